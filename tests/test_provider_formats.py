"""Local key-format checks accept every real key shape and reject only sure failures."""

import pytest

from client.providers import KNOWN_PROVIDERS, check_key_format, get_provider, parse_model
from splitkey.errors import InvalidInputError, KeyFormatError

HEX64 = "0123456789abcdef" * 4

VALID_KEYS = [
    ("openai", "sk-" + "T3stOnlyA" * 5 + "abc"),  # legacy: sk- + 48
    ("openai", "sk-proj-TESTONLY_a-b_c-" + "x" * 100),
    ("openai", "sk-svcacct-TESTONLY-" + "y_" * 40),
    ("openai", "sk-None-TESTONLY" + "z" * 40),
    ("openai", "sk-future9-TESTONLY-" + "w" * 60),
    ("anthropic", "sk-ant-api03-TESTONLY_" + "k-" * 45 + "AA"),
    ("openrouter", "sk-or-v1-" + HEX64),
    ("google", "AIza" + "SyTESTONLY0123456789abcdefghijklmno"),
]


def test_legacy_openai_key_is_sk_plus_48():
    assert len(VALID_KEYS[0][1]) == 3 + 48
    assert len(VALID_KEYS[-1][1]) == 4 + 35


@pytest.mark.parametrize(("provider", "key"), VALID_KEYS)
def test_valid_shapes_accepted(provider, key):
    check_key_format(provider, key)


@pytest.mark.parametrize("provider", ["OpenAI", " openai ", "OPENAI"])
def test_provider_name_case_insensitive(provider):
    check_key_format(provider, VALID_KEYS[1][1])


def test_unknown_shape_accepted_for_google():
    # A key without a known prefix is left to the live check.
    check_key_format("google", "GOOG-TESTONLY-new-shape-123456")


@pytest.mark.parametrize(
    ("provider", "key", "expected"),
    [
        ("openai", "", "empty"),
        ("openai", "sk-" + "a" * 253, "maximum of 255"),
        ("openai", "sk-proj-TEST ONLY", "whitespace U+0020 at position 13"),
        ("anthropic", "sk-ant-api03-TEST\u028bONLY", "non-ASCII character U+028B at position 18"),
        ("openai", "sk-admin-TESTONLY0123456789", "OpenAI admin key"),
        ("anthropic", "sk-ant-admin01-TESTONLY0123456789", "Anthropic admin key"),
        ("openai", "sk-ant-api03-TESTONLY0123456789", "this looks like an Anthropic key"),
        ("openai", "sk-or-v1-" + HEX64, "this looks like an OpenRouter key"),
        ("openai", "AIzaSyTESTONLY0123456789abcdefghijklmno", "this looks like a Google key"),
        ("anthropic", "sk-proj-TESTONLY0123456789", "this looks like an OpenAI key"),
        ("google", "sk-proj-TESTONLY0123456789", "this looks like an OpenAI key"),
        ("openrouter", "sk-ant-api03-TESTONLY0123456789", "this looks like an Anthropic key"),
    ],
)
def test_sure_failures_rejected(provider, key, expected):
    with pytest.raises(KeyFormatError) as caught:
        check_key_format(provider, key)
    assert expected in str(caught.value)
    if len(key) >= 12:
        assert key[-8:] not in str(caught.value)


def test_other_provider_message_names_fix():
    with pytest.raises(KeyFormatError) as caught:
        check_key_format("openai", "sk-ant-api03-TESTONLY0123456789")
    assert "'anthropic' provider" in str(caught.value)


def test_unknown_provider_lists_known():
    with pytest.raises(InvalidInputError) as caught:
        check_key_format("mistral", "sk-TESTONLY")
    assert "anthropic, google, openai, openrouter" in str(caught.value)
    assert not isinstance(caught.value, KeyFormatError)


def test_registry_has_four_providers():
    assert KNOWN_PROVIDERS == ("anthropic", "google", "openai", "openrouter")
    assert get_provider("Google").display_name == "Google"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("OpenAI/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("ANTHROPIC/claude-haiku-4-5", ("anthropic", "claude-haiku-4-5")),
        ("google/gemini-2.5-flash", ("google", "gemini-2.5-flash")),
        ("openrouter/meta-llama/llama-3.1-70b", ("openrouter", "meta-llama/llama-3.1-70b")),
        ("openai", ("openai", "")),
        ("Google", ("google", "")),
        (" openai/gpt-4o ", ("openai", "gpt-4o")),
    ],
)
def test_parse_model(model, expected):
    assert parse_model(model) == expected


@pytest.mark.parametrize("model", ["mistral/large", "gemini", "", "  ", "openai/gpt 4o"])
def test_parse_model_rejects(model):
    with pytest.raises(InvalidInputError) as caught:
        parse_model(model)
    if model.strip() and " " not in model.strip():
        assert "known providers are anthropic, google, openai, openrouter" in str(caught.value)
