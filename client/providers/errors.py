"""Errors of calls to AI providers.

    SplitkeyError (splitkey.errors)
    └── ProviderError               base: a call to a provider failed
        ├── ProviderHTTPError       the provider sent an HTTP error status
        ├── ProviderConnectionError no usable response: refused, reset, timed out
        └── ProviderCallError       retries ran out; carries attempts and last status

None of them ever holds the API key: response bodies pass through
`client.providers.redact` before they are stored, and URLs never carry keys.
They are raised without exception chains, because the low-level exceptions of
the HTTP layer and their traceback frames can reference request headers.
"""

from __future__ import annotations

from collections.abc import Mapping

from splitkey.errors import SplitkeyError


class ProviderError(SplitkeyError):
    """A call to an AI provider failed; `provider` is the registry name, e.g. "openai"."""

    def __init__(self, message: str, provider: str) -> None:
        super().__init__(message)
        self.provider = provider


class ProviderHTTPError(ProviderError):
    """The provider returned an HTTP error status.

    `headers` contains only response headers that are safe to keep (rate-limit
    and request-id headers, Retry-After, content type), with lower-case names.
    `body_excerpt` is the start of the response body with anything that looks
    like the key removed. `error_type`, `error_code` and `error_message` come
    from the provider's JSON error object when it had one.
    """

    def __init__(
        self,
        provider: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        body_excerpt: str = "",
        *,
        error_type: str = "",
        error_code: str = "",
        error_message: str = "",
        body_json: object = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.body_excerpt = body_excerpt
        self.error_type = error_type
        self.error_code = error_code
        self.error_message = error_message
        # Parsed JSON body after redaction, for provider-specific details such
        # as Google's error.details list.
        self.body_json = body_json
        detail = error_message or body_excerpt[:200]
        kind = " ".join(part for part in (error_type, error_code) if part)
        text = f"{provider} returned HTTP {status}"
        if kind:
            text += f" ({kind})"
        if detail:
            text += f": {detail}"
        super().__init__(text, provider)

    def __repr__(self) -> str:
        return f"ProviderHTTPError(provider={self.provider!r}, status={self.status})"


class ProviderConnectionError(ProviderError):
    """No usable HTTP response: the connection failed, broke or timed out.

    `reason` is "timeout", "connection" or "protocol".
    """

    def __init__(self, provider: str, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        text = f"{provider}: {reason} error"
        if detail:
            text += f" ({detail})"
        super().__init__(text, provider)

    def __repr__(self) -> str:
        return f"ProviderConnectionError(provider={self.provider!r}, reason={self.reason!r})"


class ProviderCallError(ProviderError):
    """A provider call failed after the retry budget ran out.

    `last_status` is the last HTTP status, or None when the last attempt got no
    response. `last_reason` then gives the reason ("timeout", "connection").
    """

    def __init__(
        self,
        message: str,
        provider: str,
        *,
        attempts: int,
        last_status: int | None,
        last_reason: str = "",
        elapsed_s: float = 0.0,
        hint: str = "",
    ) -> None:
        super().__init__(message, provider)
        self.attempts = attempts
        self.last_status = last_status
        self.last_reason = last_reason
        self.elapsed_s = elapsed_s
        self.hint = hint

    def __repr__(self) -> str:
        return (
            f"ProviderCallError(provider={self.provider!r}, attempts={self.attempts}, "
            f"last_status={self.last_status!r}, last_reason={self.last_reason!r})"
        )
