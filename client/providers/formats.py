"""The provider registry, local key-format checks and model-name parsing.

The format check is deliberately loose. Providers change their key formats
(OpenAI went from ``sk-`` + 48 characters to ``sk-proj-``, ``sk-svcacct-`` and
others), and a strict pattern rejects valid new keys. So a key is rejected
only when it is empty, too long, contains whitespace, control or non-ASCII
characters, is a known key type that cannot call models (an admin key), or is
recognizably another provider's key. Everything else is left to the live
check against the provider.
"""

from __future__ import annotations

from dataclasses import dataclass

from splitkey.errors import InvalidInputError, KeyFormatError

from .normalize import check_key_characters


@dataclass(frozen=True)
class ProviderInfo:
    """Static facts about one AI provider."""

    name: str
    display_name: str
    # Prefix that identifies this provider's keys, for "this looks like" hints.
    key_prefix: str
    status_page: str
    # Console page for creating a key that can call models.
    key_console: str


PROVIDERS: dict[str, ProviderInfo] = {
    "anthropic": ProviderInfo(
        "anthropic",
        "Anthropic",
        "sk-ant-",
        "https://status.anthropic.com",
        "https://console.anthropic.com/settings/keys",
    ),
    "google": ProviderInfo(
        "google",
        "Google",
        "AIza",
        "https://aistudio.google.com/status",
        "https://aistudio.google.com/app/apikey",
    ),
    "openai": ProviderInfo(
        "openai",
        "OpenAI",
        "sk-",
        "https://status.openai.com",
        "https://platform.openai.com/api-keys",
    ),
    "openrouter": ProviderInfo(
        "openrouter",
        "OpenRouter",
        "sk-or-",
        "https://status.openrouter.ai",
        "https://openrouter.ai/settings/keys",
    ),
}

KNOWN_PROVIDERS = tuple(sorted(PROVIDERS))

# Key types that exist but cannot call models: (provider, prefix, description).
_WRONG_KEY_TYPES = (
    ("openai", "sk-admin-", "an OpenAI admin key (sk-admin-…), which manages the organization"),
    ("anthropic", "sk-ant-admin", "an Anthropic admin key (sk-ant-admin…), which manages the organization"),
)


def get_provider(name: str) -> ProviderInfo:
    """Return the registry entry for a provider name (case-insensitive).

    Raises InvalidInputError naming the known providers when the name is unknown.
    """
    info = PROVIDERS.get(name.strip().lower()) if isinstance(name, str) else None
    if info is None:
        raise InvalidInputError(
            f"unknown provider {name!r}: known providers are {', '.join(KNOWN_PROVIDERS)}"
        )
    return info


def guess_key_provider(key: str) -> str | None:
    """Return the provider whose key prefix the key carries, or None when it has none."""
    # Longer prefixes first, because "sk-ant-" and "sk-or-" keys also start with "sk-".
    if key.startswith("sk-ant-"):
        return "anthropic"
    if key.startswith("sk-or-"):
        return "openrouter"
    if key.startswith("AIza"):
        return "google"
    if key.startswith("sk-"):
        return "openai"
    return None


def check_key_format(provider: str, key: str) -> None:
    """Raise KeyFormatError when `key` cannot be a model-calling key of `provider`.

    Expects a key that `normalize_pasted_key` already cleaned. Raises
    InvalidInputError for an unknown provider. Messages never contain the key.
    """
    info = get_provider(provider)
    check_key_characters(key)

    for owner, prefix, description in _WRONG_KEY_TYPES:
        if key.startswith(prefix):
            if owner == info.name:
                raise KeyFormatError(
                    f"this is {description} and cannot call models: create an API key "
                    f"at {info.key_console} and paste that one"
                )
            break

    guessed = guess_key_provider(key)
    if guessed is not None and guessed != info.name:
        other = PROVIDERS[guessed]
        raise KeyFormatError(
            f"this looks like {_article(other.display_name)} {other.display_name} key "
            f"({other.key_prefix}…), not {_article(info.display_name)} {info.display_name} "
            f"key: add it as the {other.name!r} provider, or paste the "
            f"{info.display_name} key"
        )


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def parse_model(model: str) -> tuple[str, str]:
    """Split ``provider/model`` into (provider, model name).

    The provider part is case-insensitive and returned in lower case; the model
    name keeps its case and may contain further slashes (OpenRouter names such
    as ``openrouter/meta-llama/llama-3-70b``). A bare provider returns an empty
    model name. Raises InvalidInputError for an empty value, whitespace or an
    unknown provider.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError(
            "model is empty: name it as provider/model, e.g. openai/gpt-4o-mini; "
            f"known providers are {', '.join(KNOWN_PROVIDERS)}"
        )
    text = model.strip()
    if any(char.isspace() or ord(char) < 0x20 for char in text):
        raise InvalidInputError(f"model {text!r} contains whitespace or control characters")

    provider_part, _, model_name = text.partition("/")
    provider = provider_part.lower()
    if provider not in PROVIDERS:
        raise InvalidInputError(
            f"unknown provider {provider_part!r} in model {text!r}: known providers are "
            f"{', '.join(KNOWN_PROVIDERS)}"
        )
    return provider, model_name
