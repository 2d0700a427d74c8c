"""Cleanup of pasted API keys: surrounding junk removed, inner oddities rejected."""

import pytest

from client.providers import KEY_MAX_BYTES, normalize_pasted_key
from splitkey.errors import InvalidInputError, KeyFormatError

KEY = "sk-proj-TESTONLY-aaaa1111"


@pytest.mark.parametrize(
    "pasted",
    [
        "  sk-proj-TESTONLY-aaaa1111\n",
        "\tsk-proj-TESTONLY-aaaa1111\r\n",
        "\ufeffsk-proj-TESTONLY-aaaa1111",
        "\u200bsk-proj-TESTONLY-aaaa1111\u200b",
        "\u200c\u200dsk-proj-TESTONLY-aaaa1111\u2060",
        "\u00a0sk-proj-TESTONLY-aaaa1111\u00a0",
        "\u202fsk-proj-TESTONLY-aaaa1111",
        '"sk-proj-TESTONLY-aaaa1111"',
        "'sk-proj-TESTONLY-aaaa1111'",
        "\u201csk-proj-TESTONLY-aaaa1111\u201d",
        "\u2018sk-proj-TESTONLY-aaaa1111\u2019",
        ' \ufeff "sk-proj-TESTONLY-aaaa1111"\n',
        "\u201c \u200bsk-proj-TESTONLY-aaaa1111\n\u201d",
    ],
)
def test_normalize_strips_surrounding(pasted):
    assert normalize_pasted_key(pasted) == KEY


def test_normalize_keeps_clean_key():
    assert normalize_pasted_key(KEY) == KEY


def test_lookalike_letter_rejected_with_position():
    pasted = KEY[:19] + "\u028b" + KEY[20:]
    with pytest.raises(KeyFormatError) as caught:
        normalize_pasted_key(pasted)
    message = str(caught.value)
    assert "U+028B at position 20" in message
    assert "LATIN SMALL LETTER V WITH HOOK" in message
    assert "TESTONLY" not in message
    assert isinstance(caught.value, InvalidInputError)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("sk-proj-TEST ONLY-aaaa1111", "whitespace U+0020 at position 13 (SPACE;"),
        ("sk-proj-TESTONLY\taaaa1111", "whitespace U+0009"),
        ("sk-proj-TESTONLY\naaaa1111", "whitespace U+000A"),
        ("sk-proj-TESTONLY\u00a0aaaa1111", "whitespace U+00A0 at position 17 (NO-BREAK SPACE;"),
        ("sk-proj-TESTONLY\u200baaaa1111", "non-ASCII character U+200B at position 17 (ZERO WIDTH SPACE;"),
        ("sk-proj-TESTONLY\x07aaaa1111", "control character U+0007"),
        ("sk-proj-TESTONLY\x7faaaa1111", "control character U+007F"),
        ("sk-proj-TESTONLY-\u00e4aaa1111", "non-ASCII character U+00E4"),
    ],
)
def test_inner_characters_rejected(pasted, expected):
    with pytest.raises(KeyFormatError) as caught:
        normalize_pasted_key(pasted)
    assert expected in str(caught.value)
    assert "aaaa1111" not in str(caught.value)


@pytest.mark.parametrize("pasted", ["", "   ", "\n\ufeff\u200b", '""', "\u201c\u201d"])
def test_empty_rejected(pasted):
    with pytest.raises(KeyFormatError, match="empty"):
        normalize_pasted_key(pasted)


@pytest.mark.parametrize(
    "pasted",
    ['"sk-proj-TESTONLY-aaaa1111', "sk-proj-TESTONLY-aaaa1111\u201d", "\u201csk-proj-TESTONLY-aaaa1111'"],
)
def test_unmatched_quote_rejected(pasted):
    with pytest.raises(KeyFormatError, match="quote"):
        normalize_pasted_key(pasted)


def test_length_limit_is_255_bytes():
    longest = "sk-" + "a" * (KEY_MAX_BYTES - 3)
    assert KEY_MAX_BYTES == 255
    assert normalize_pasted_key(longest) == longest
    with pytest.raises(KeyFormatError) as caught:
        normalize_pasted_key(longest + "b")
    assert "256 bytes" in str(caught.value)
    assert "maximum of 255" in str(caught.value)


def test_non_text_rejected():
    with pytest.raises(KeyFormatError, match="bytes"):
        normalize_pasted_key(b"sk-proj-TESTONLY")


@pytest.mark.parametrize(
    "pasted",
    ["OPENAI_API_KEY=sk-proj-TESTONLY-aaaa1111", 'export OPENAI_API_KEY="sk-proj-TESTONLY-aaaa1111"\n',
     "OPENAI_API_KEY = 'sk-proj-TESTONLY-aaaa1111'"],
)
def test_env_assignment_prefix_stripped(pasted):
    assert normalize_pasted_key(pasted) == "sk-proj-TESTONLY-aaaa1111"


def test_undecodable_byte_named_as_byte():
    with pytest.raises(KeyFormatError) as caught:
        normalize_pasted_key("sk-proj-\udcffTESTONLY")
    assert "byte 0xFF that is not valid UTF-8" in str(caught.value)
    assert "position 9" in str(caught.value)
