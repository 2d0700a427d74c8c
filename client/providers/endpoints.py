"""Base URLs and probe models of provider requests, from the client's own configuration.

Base URLs never come from stored data. A keystore row that could redirect a
decrypted key to an attacker's server would defeat the split custody.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field

from splitkey.errors import ConfigError

from .formats import KNOWN_PROVIDERS, get_provider

# NOTE: providers retire models. When a probe model is retired, the live check
# reports "could not verify" naming the model; set `probe_models` then.
DEFAULT_PROBE_MODELS = {
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.5-flash-lite",
    "openai": "gpt-4o-mini",
    "openrouter": "openai/gpt-4o-mini",
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(provider: str, url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in {"https", "http"} or not parsed.hostname:
        raise ConfigError(f"{provider} base URL {url!r} must be an absolute https:// URL")
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        # Plain HTTP would send the key in clear text; only a local test
        # server on the loopback interface may use it.
        raise ConfigError(
            f"{provider} base URL {url!r} uses http://, which sends the API key unencrypted: "
            "use https:// (http:// is accepted only for loopback addresses)"
        )
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise ConfigError(
            f"{provider} base URL {url!r} must not contain credentials, a query or a fragment"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class ProviderEndpoints:
    """Base URLs, probe models and HTTP settings for provider calls.

    Each base URL includes the API version path, e.g. ``https://api.openai.com/v1``.
    """

    openai: str = "https://api.openai.com/v1"
    anthropic: str = "https://api.anthropic.com/v1"
    google: str = "https://generativelanguage.googleapis.com/v1beta"
    openrouter: str = "https://openrouter.ai/api/v1"
    # Model used for the one-token generation request of a live key check.
    probe_models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROBE_MODELS), hash=False)
    anthropic_version: str = "2023-06-01"
    # Honor HTTPS_PROXY / NO_PROXY from the environment.
    use_environment_proxies: bool = True
    user_agent: str = "splitkey/0.1"

    def __post_init__(self) -> None:
        for provider in KNOWN_PROVIDERS:
            object.__setattr__(self, provider, _check_base_url(provider, getattr(self, provider)))
        unknown = set(self.probe_models) - set(KNOWN_PROVIDERS)
        if unknown:
            raise ConfigError(
                f"probe_models names unknown providers {sorted(unknown)}: known providers are "
                f"{', '.join(KNOWN_PROVIDERS)}"
            )
        merged = dict(DEFAULT_PROBE_MODELS)
        merged.update(self.probe_models)
        object.__setattr__(self, "probe_models", merged)

    def base_url(self, provider: str) -> str:
        """Return the configured base URL of a provider, without a trailing slash."""
        return getattr(self, get_provider(provider).name)

    def probe_model(self, provider: str) -> str:
        """Return the model used to check a key of this provider."""
        return self.probe_models[get_provider(provider).name]
