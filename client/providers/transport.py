"""HTTP requests to providers over the standard library, with the key kept out of errors.

The key travels only in a request header, never in a URL. Redirects are not
followed, because urllib would resend the authentication header to the new
location. Failures are raised as `ProviderHTTPError` or
`ProviderConnectionError`, built from the status, a few safe headers and a
redacted body excerpt. They are raised outside the except block, so no
exception of the HTTP layer is chained to them: its frames reference the
request headers.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from splitkey.secret import SecretKey

from .errors import ProviderConnectionError, ProviderHTTPError
from .redact import redact, redact_json

logger = logging.getLogger(__name__)

# Enough for any provider error object; probe responses are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
EXCERPT_CHARS = 500

_SAFE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_SAFE_HEADERS = frozenset(
    {"retry-after", "retry-after-ms", "content-type", "x-request-id", "request-id", "cf-ray"}
)


@dataclass(frozen=True)
class _NoResponse:
    reason: str
    detail: str


@dataclass(frozen=True)
class ProviderResponse:
    """A successful (2xx) provider response: status, safe headers and parsed JSON body."""

    status: int
    headers: dict[str, str]
    body: object


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # Returning None makes urllib raise HTTPError for the 3xx response.
        return None


def build_opener(use_environment_proxies: bool = True) -> urllib.request.OpenerDirector:
    """Return a urllib opener that verifies TLS, never follows redirects and logs nothing."""
    handlers: list[urllib.request.BaseHandler] = [
        _NoRedirect(),
        urllib.request.HTTPHandler(debuglevel=0),
        urllib.request.HTTPSHandler(debuglevel=0, context=ssl.create_default_context()),
    ]
    if not use_environment_proxies:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def build_request(
    url: str,
    key: SecretKey,
    auth_header: str,
    payload: Mapping[str, object],
    extra_headers: Mapping[str, str] | None = None,
    *,
    bearer: bool = False,
    user_agent: str = "splitkey",
) -> urllib.request.Request:
    """Return a JSON POST request carrying the key in `auth_header`.

    With `bearer`, the header value is ``Bearer <key>``.
    """
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    request.add_header("User-Agent", user_agent)
    for name, value in (extra_headers or {}).items():
        request.add_header(name, value)
    request.add_header(auth_header, ("Bearer " if bearer else "") + key.reveal())
    return request


def _safe_headers(headers: object) -> dict[str, str]:
    kept: dict[str, str] = {}
    if headers is None:
        return kept
    for name, value in headers.items():
        lower = name.lower()
        if lower in _SAFE_HEADERS or lower.startswith(_SAFE_HEADER_PREFIXES):
            kept[lower] = str(value)
    return kept


def _error_fields(body: object) -> tuple[str, str, str]:
    """Return (type, code, message) from the error object of any of the four providers."""
    if not isinstance(body, dict):
        return "", "", ""
    error = body.get("error")
    if not isinstance(error, dict):
        return "", "", ""
    message = str(error.get("message") or "")
    # OpenAI and Anthropic: error.type; Google: error.status.
    error_type = str(error.get("type") or error.get("status") or "")
    code = error.get("code")
    # OpenAI: string code; Google and OpenRouter repeat the HTTP status as a
    # number, and Google puts the reason (API_KEY_INVALID, ...) in details.
    error_code = code if isinstance(code, str) else ""
    if not error_code:
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and detail.get("reason"):
                error_code = str(detail["reason"])
                break
    return error_type, error_code, message


def _read(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    timeout_s: float,
    key: SecretKey,
) -> tuple[int, dict[str, str], str, object] | _NoResponse:
    """Send the request; return (status, safe headers, redacted text, redacted JSON) or the failure.

    Never raises for network failures: the caller raises the returned error
    outside this frame's except blocks.
    """
    failure_reason = ""
    failure_detail = ""
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = response.status
            headers = _safe_headers(response.headers)
            raw = response.read(MAX_BODY_BYTES)
    except urllib.error.HTTPError as exc:
        status = exc.code
        headers = _safe_headers(exc.headers)
        try:
            raw = exc.read(MAX_BODY_BYTES)
        except (OSError, http.client.HTTPException):
            raw = b""
        finally:
            exc.close()
    except urllib.error.URLError as exc:
        reason = exc.reason
        failure_reason = "timeout" if isinstance(reason, TimeoutError) else "connection"
        failure_detail = getattr(reason, "strerror", None) or type(reason).__name__
    except TimeoutError:
        failure_reason, failure_detail = "timeout", f"no response within {timeout_s:g} s"
    except OSError as exc:
        failure_reason, failure_detail = "connection", exc.strerror or type(exc).__name__
    except http.client.HTTPException as exc:
        failure_reason, failure_detail = "protocol", type(exc).__name__

    if failure_reason:
        return _NoResponse(failure_reason, str(failure_detail))

    text = redact(raw.decode("utf-8", errors="replace"), key.reveal())
    try:
        parsed = redact_json(json.loads(raw), key.reveal()) if raw else None
    except ValueError:
        parsed = None
    return status, headers, text, parsed


def send(
    provider: str,
    request: urllib.request.Request,
    key: SecretKey,
    *,
    timeout_s: float,
    opener: urllib.request.OpenerDirector,
) -> ProviderResponse:
    """Send a provider request and return its 2xx response.

    Raises ProviderHTTPError for any other status (including 3xx, since
    redirects are refused) and ProviderConnectionError when no response came.
    `key` is used only to redact echoes of it from the response.
    """
    outcome = _read(opener, request, timeout_s, key)
    if isinstance(outcome, _NoResponse):
        logger.debug("%s request failed: %s (%s)", provider, outcome.reason, outcome.detail)
        raise ProviderConnectionError(provider, outcome.reason, outcome.detail)

    status, headers, text, parsed = outcome
    logger.debug("%s returned HTTP %d", provider, status)
    if 200 <= status < 300:
        return ProviderResponse(status, headers, parsed)

    error_type, error_code, message = _error_fields(parsed)
    raise ProviderHTTPError(
        provider,
        status,
        headers,
        text[:EXCERPT_CHARS],
        error_type=error_type,
        error_code=error_code,
        error_message=message[:EXCERPT_CHARS],
        body_json=parsed,
    )
