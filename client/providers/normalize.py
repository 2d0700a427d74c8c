"""Cleanup of API keys pasted by people, and the character rules every key must meet.

Keys arrive from web forms, chat messages and password managers, so they often
carry a trailing newline, a byte-order mark, a non-breaking space or a pair of
quotes. Those are removed around the key. Anything odd *inside* the key is
rejected, because silently dropping an inner character would store a different
key than the one the provider issued.

Error messages name the offending code point and its position and never contain
the key itself. Positions count from 1 within the key after the surrounding
characters were removed.
"""

from __future__ import annotations

import re
import unicodedata

from splitkey.errors import KeyFormatError

# The record format pads every key to 256 bytes and needs one byte of that
# for the padding marker, so 255 bytes is the largest key it can store.
KEY_MAX_BYTES = 255

# Invisible characters that editors and web pages put around copied text.
_INVISIBLE = frozenset(
    {
        "\ufeff",  # byte-order mark
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
    }
)

# Opening quote -> the closing quotes accepted with it. Word processors and
# chat clients turn straight quotes into curly ones, in either orientation.
_QUOTE_PAIRS = {
    '"': frozenset({'"'}),
    "'": frozenset({"'"}),
    "`": frozenset({"`"}),
    "\u201c": frozenset({"\u201d", "\u201c"}),  # “ ”
    "\u201d": frozenset({"\u201d", "\u201c"}),
    "\u201e": frozenset({"\u201d", "\u201c"}),  # „
    "\u2018": frozenset({"\u2019", "\u2018"}),  # ‘ ’
    "\u2019": frozenset({"\u2019", "\u2018"}),
    "\u201a": frozenset({"\u2019", "\u2018"}),  # ‚
    "\u00ab": frozenset({"\u00bb"}),  # « »
}
# "NAME=" or "export NAME=" before a key, as in a .env file or a shell line.
_ASSIGNMENT = re.compile(r"(?:export\s+)?[A-Z][A-Z0-9_]*\s*=\s*")
_ALL_QUOTES = frozenset(_QUOTE_PAIRS) | frozenset().union(*_QUOTE_PAIRS.values())


def _is_surrounding_junk(char: str) -> bool:
    # str.isspace() covers ASCII whitespace, line breaks, U+00A0, U+202F,
    # U+2028 and the other Unicode space separators.
    return char.isspace() or char in _INVISIBLE


def _strip_surrounding(text: str) -> str:
    start = 0
    end = len(text)
    while start < end and _is_surrounding_junk(text[start]):
        start += 1
    while end > start and _is_surrounding_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def _character_name(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        # Python reads bytes that are not UTF-8 as lone surrogates U+DC80..U+DCFF
        # (the "surrogateescape" error handler), so name the original byte.
        return f"byte 0x{code - 0xDC00:02X} that is not valid UTF-8"
    name = unicodedata.name(char, "")
    if not name:
        category = unicodedata.category(char)
        name = "unnamed control character" if category == "Cc" else f"unnamed, category {category}"
    return name


def describe_code_point(char: str) -> str:
    """Return a code point as ``U+XXXX (NAME)`` for error messages."""
    return f"U+{ord(char):04X} ({_character_name(char)})"


def find_invalid_character(key: str) -> tuple[int, str, str] | None:
    """Find the first character that no API key may contain.

    Returns ``(position counted from 1, character, kind)`` or None, where kind
    is "whitespace", "control character" or "non-ASCII character".
    """
    for index, char in enumerate(key):
        if char.isspace():
            return index + 1, char, "whitespace"
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            return index + 1, char, "control character"
        if code > 0x7E:
            return index + 1, char, "non-ASCII character"
    return None


def check_key_characters(key: str) -> None:
    """Raise KeyFormatError unless the key is non-empty, printable ASCII and short enough.

    This is the part of the format check that applies to every provider. It
    expects a key that normalization already cleaned up.
    """
    if not key:
        raise KeyFormatError("the API key is empty: paste the whole key")

    invalid = find_invalid_character(key)
    if invalid is not None:
        position, char, kind = invalid
        raise KeyFormatError(
            f"the API key contains {kind} U+{ord(char):04X} at position {position} "
            f"({_character_name(char)}; positions count from 1): API keys are printable "
            "ASCII without spaces, so copy the key again from the provider's console"
        )

    size = len(key.encode("ascii"))
    if size > KEY_MAX_BYTES:
        raise KeyFormatError(
            f"the API key is {size} bytes long, more than the maximum of {KEY_MAX_BYTES} "
            "bytes: check that only the key was pasted"
        )


def normalize_pasted_key(text: str) -> str:
    """Return the API key contained in pasted text, or raise KeyFormatError.

    Removes surrounding whitespace, line breaks, byte-order marks, zero-width
    characters, non-breaking spaces and one pair of matching straight or curly
    quotes. Rejects an empty result, inner whitespace, control characters,
    non-ASCII characters, a quote left on one side only, and keys longer than
    ``KEY_MAX_BYTES``.
    """
    if not isinstance(text, str):
        raise KeyFormatError(f"the API key must be text, not {type(text).__name__}")

    key = _strip_surrounding(text)
    assignment = _ASSIGNMENT.match(key)
    if assignment:
        # A line copied from a .env file or a shell: OPENAI_API_KEY=sk-...
        key = _strip_surrounding(key[assignment.end():])
    if len(key) >= 2 and key[0] in _QUOTE_PAIRS and key[-1] in _QUOTE_PAIRS[key[0]]:
        key = _strip_surrounding(key[1:-1])

    if key and key[0] in _ALL_QUOTES:
        raise KeyFormatError(
            f"the API key starts with the quote {describe_code_point(key[0])} but does "
            "not end with a matching one: paste the key without quotes"
        )
    if key and key[-1] in _ALL_QUOTES:
        raise KeyFormatError(
            f"the API key ends with the quote {describe_code_point(key[-1])} but does "
            "not start with a matching one: paste the key without quotes"
        )

    check_key_characters(key)
    return key
