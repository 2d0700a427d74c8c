"""The smallest authenticated request that exercises what generation needs, per provider.

A model list would accept keys that cannot generate (restricted keys, empty
credit balances), so the probe requests a one-token completion. It costs a
few input tokens per check.
"""

from __future__ import annotations

import urllib.parse
import urllib.request

from splitkey.secret import SecretKey

from .endpoints import ProviderEndpoints
from .formats import get_provider
from .transport import build_request

_PROMPT = "ping"


def build_probe_request(
    provider: str, endpoints: ProviderEndpoints, key: SecretKey
) -> urllib.request.Request:
    """Return a one-token generation request for `provider`, authenticated with `key`.

    The key goes into the provider's authentication header: ``Authorization:
    Bearer`` (OpenAI, OpenRouter), ``x-api-key`` (Anthropic) or
    ``x-goog-api-key`` (Google). It is never put into the URL.
    """
    name = get_provider(provider).name
    base = endpoints.base_url(name)
    model = endpoints.probe_model(name)
    messages = [{"role": "user", "content": _PROMPT}]
    agent = endpoints.user_agent

    if name == "openai":
        payload = {"model": model, "messages": messages, "max_completion_tokens": 1}
        return build_request(
            f"{base}/chat/completions", key, "Authorization", payload, bearer=True, user_agent=agent
        )
    if name == "openrouter":
        payload = {"model": model, "messages": messages, "max_tokens": 1}
        return build_request(
            f"{base}/chat/completions", key, "Authorization", payload, bearer=True, user_agent=agent
        )
    if name == "anthropic":
        payload = {"model": model, "max_tokens": 1, "messages": messages}
        return build_request(
            f"{base}/messages",
            key,
            "x-api-key",
            payload,
            {"anthropic-version": endpoints.anthropic_version},
            user_agent=agent,
        )
    # google
    payload = {
        "contents": [{"role": "user", "parts": [{"text": _PROMPT}]}],
        "generationConfig": {"maxOutputTokens": 1},
    }
    path = urllib.parse.quote(f"models/{model}", safe="/.-_")
    return build_request(
        f"{base}/{path}:generateContent", key, "x-goog-api-key", payload, user_agent=agent
    )
