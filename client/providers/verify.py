"""Live check of an API key against its provider.

`verify_key` sends one small generation request (max one output token) with
the key and reports exactly one `CheckOutcome`. Temporary failures are retried
briefly; when they persist the outcome is "could not verify", which is not the
key's fault.
"""

from __future__ import annotations

import logging
import random
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from splitkey.errors import KeyFormatError
from splitkey.secret import SecretKey

from .backoff import call_with_backoff
from .endpoints import ProviderEndpoints
from .errors import ProviderCallError, ProviderHTTPError
from .formats import check_key_format, get_provider
from .outcomes import CheckOutcome, CheckResult, result_from_call_error, result_from_http_error
from .probes import build_probe_request
from .ratelimit import CheckRateLimiter
from .transport import build_opener, send

logger = logging.getLogger(__name__)

__all__ = ["CheckOutcome", "CheckResult", "CheckRetryPolicy", "verify_key"]


@dataclass(frozen=True)
class CheckRetryPolicy:
    """Retry budget of one key check. Times are in seconds.

    Shorter than for generation calls: a person is waiting for the result.
    """

    max_attempts: int = 2
    max_total_s: float = 20.0
    initial_s: float = 0.5
    max_s: float = 4.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random | None = None


def _format_problem(provider: str, key: SecretKey) -> KeyFormatError | None:
    # Returns a fresh exception instead of letting the original propagate, so
    # the traceback the caller sees does not include frames whose local
    # variables hold the revealed key.
    try:
        check_key_format(provider, key.reveal())
    except KeyFormatError as exc:
        return KeyFormatError(str(exc))
    return None


def verify_key(
    provider: str,
    key: SecretKey | str,
    endpoints: ProviderEndpoints,
    timeout_s: float = 10.0,
    *,
    retry: CheckRetryPolicy | None = None,
    rate_limiter: CheckRateLimiter | None = None,
    workspace_id: str = "",
    opener: urllib.request.OpenerDirector | None = None,
) -> CheckResult:
    """Check `key` live against `provider` and return one outcome.

    The key must already be normalized (`normalize_pasted_key`). Raises
    KeyFormatError before any request when the local format check fails,
    InvalidInputError for an unknown provider, and ResourceExhaustedError when
    `rate_limiter` refuses another check for `workspace_id`. Every provider
    response, timeout or outage is reported as a CheckResult instead.
    `timeout_s` bounds each socket operation of one attempt.
    """
    if not isinstance(key, SecretKey):
        # Rebinding the name keeps the plain string out of this frame's locals.
        key = SecretKey(key, provider)
    name = get_provider(provider).name

    problem = _format_problem(name, key)
    if problem is not None:
        raise problem

    if rate_limiter is not None:
        rate_limiter.acquire(workspace_id)

    policy = retry or CheckRetryPolicy()
    request = build_probe_request(name, endpoints, key)
    http_opener = opener or build_opener(endpoints.use_environment_proxies)

    def attempt():
        return send(name, request, key, timeout_s=timeout_s, opener=http_opener)

    result: CheckResult
    try:
        response = call_with_backoff(
            attempt,
            provider=name,
            max_attempts=policy.max_attempts,
            max_total_s=policy.max_total_s,
            initial_s=policy.initial_s,
            max_s=policy.max_s,
            sleep=policy.sleep,
            clock=policy.clock,
            rng=policy.rng,
        )
    except ProviderHTTPError as exc:
        result = result_from_http_error(
            exc, key_hint=key.masked, probe_model=endpoints.probe_model(name)
        )
    except ProviderCallError as exc:
        result = result_from_call_error(exc, key_hint=key.masked)
    else:
        display = get_provider(name).display_name
        result = CheckResult(
            name, CheckOutcome.VALID, f"the {display} key can generate", key.masked, response.status
        )

    logger.info(
        "key check for %s key %s in workspace %r: %s (HTTP %s)",
        name,
        key.masked,
        workspace_id,
        result.outcome.value,
        result.status,
    )
    return result
