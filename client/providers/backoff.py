"""Bounded retries of provider calls: exponential backoff, full jitter, Retry-After.

A provider call is retried when the failure is temporary: HTTP 408, a 429 that
is a rate limit (not an exhausted quota or credit balance), any 5xx including
Anthropic's 529, and connection failures or timeouts. It is never retried for
other 4xx statuses (400, 401, 402, 403, 404, ...): those need a change by the
customer, and repeating them only burns quota.

Convention for the wrapped function: it returns the provider's result, or
raises `ProviderHTTPError` (status, safe headers, redacted body) or
`ProviderConnectionError`. Any other exception propagates at once, unretried.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import ProviderCallError, ProviderConnectionError, ProviderHTTPError
from .formats import PROVIDERS

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE_4XX = frozenset({408, 429})
_GOOGLE_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def is_quota_exhausted(error: ProviderHTTPError) -> bool:
    """Tell whether a 429 means a used-up quota or credit balance rather than a rate limit.

    Waiting seconds does not fix a used-up quota, so such a 429 is not retried.
    """
    if error.status != 429:
        return False
    message = error.error_message.lower()
    if error.provider == "openai":
        # OpenAI returns 429 with type/code insufficient_quota when the credit
        # balance or the monthly budget is used up.
        return (
            error.error_code in {"insufficient_quota", "billing_hard_limit_reached"}
            or error.error_type == "insufficient_quota"
            or "exceeded your current quota" in message
        )
    if error.provider == "google":
        # Google sends the same message for per-minute and per-day limits, so
        # only the QuotaFailure detail distinguishes them. A limit of 0 means the project's
        # tier has no quota for the model at all.
        for violation in _google_quota_violations(error):
            quota_id = str(violation.get("quotaId", ""))
            if "PerDay" in quota_id or str(violation.get("quotaValue", "")) == "0":
                return True
        return "limit: 0" in message
    if error.provider == "openrouter":
        # OpenRouter reports daily free-model limits as 429 "...-per-day".
        return "per-day" in message or "per day" in message
    return False


def _google_quota_violations(error: ProviderHTTPError) -> list[dict]:
    violations: list[dict] = []
    body = error.body_json
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return violations
    for detail in body["error"].get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("QuotaFailure"):
            violations.extend(v for v in detail.get("violations") or [] if isinstance(v, dict))
    return violations


def is_retryable(error: BaseException) -> bool:
    """Tell whether a failed provider call may succeed when repeated unchanged."""
    if isinstance(error, ProviderConnectionError):
        return True
    if isinstance(error, ProviderHTTPError):
        if error.status >= 500:
            return True
        if error.status in _RETRYABLE_4XX:
            return not is_quota_exhausted(error)
    return False


def retry_after_seconds(error: BaseException, wall_clock: Callable[[], float] = time.time) -> float | None:
    """Return the wait the provider asked for, in seconds, or None when it asked for none.

    Reads ``retry-after-ms``, ``Retry-After`` (delta-seconds or an HTTP date)
    and Google's ``RetryInfo.retryDelay`` detail, in that order.
    """
    if not isinstance(error, ProviderHTTPError):
        return None
    headers = error.headers

    value = headers.get("retry-after-ms", "").strip()
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass

    value = headers.get("retry-after", "").strip()
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(when.timestamp() - wall_clock(), 0.0)

    body = error.body_json
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        for detail in body["error"].get("details") or []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
                match = _GOOGLE_DELAY.match(str(detail.get("retryDelay", "")))
                if match:
                    return float(match.group(1))
    return None


class _Budget:
    """Shared state of one logical call: its start time and limits."""

    def __init__(self, max_attempts: int, max_total_s: float, clock: Callable[[], float]) -> None:
        self.max_attempts = max_attempts
        self.max_total_s = max_total_s
        self.clock = clock
        self.start = clock()
        # Set when a Retry-After did not fit into the remaining time.
        self.refused_wait_s: float | None = None

    def elapsed(self) -> float:
        return self.clock() - self.start


class _JitteredWait(wait_base):
    """Full jitter: uniform(0, min(max_s, initial_s * 2**(attempt-1))), at least Retry-After."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random, wall_clock: Callable[[], float]):
        self.initial_s = initial_s
        self.max_s = max_s
        self.rng = rng
        self.wall_clock = wall_clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        ceiling = min(self.max_s, self.initial_s * 2 ** (retry_state.attempt_number - 1))
        wait = self.rng.uniform(0.0, ceiling)
        requested = retry_after_seconds(retry_state.outcome.exception(), self.wall_clock)
        if requested is not None:
            wait = max(wait, requested)
        return wait


class _StopOnBudget(stop_base):
    """Stop after max_attempts, or when the next wait would end past max_total_s."""

    def __init__(self, budget: _Budget, wall_clock: Callable[[], float]) -> None:
        self.budget = budget
        self.wall_clock = wall_clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self.budget.max_attempts:
            return True
        upcoming = retry_state.upcoming_sleep
        if self.budget.elapsed() + upcoming >= self.budget.max_total_s:
            requested = retry_after_seconds(retry_state.outcome.exception(), self.wall_clock)
            if requested is not None and requested >= upcoming:
                self.budget.refused_wait_s = requested
            return True
        return False


class _GaveUp:
    """Result of the retry loop when the budget ran out; carries the final state."""

    def __init__(self, retry_state: tenacity.RetryCallState) -> None:
        self.attempts = retry_state.attempt_number
        self.error = retry_state.outcome.exception()


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ProviderHTTPError):
        kind = error.error_code or error.error_type
        return f"HTTP {error.status}" + (f" {kind}" if kind else "")
    if isinstance(error, ProviderConnectionError):
        return error.reason
    return type(error).__name__


def _hint(provider: str, error: BaseException | None, budget: _Budget) -> str:
    status_page = PROVIDERS[provider].status_page if provider in PROVIDERS else "the provider's status page"
    if isinstance(error, ProviderHTTPError) and error.status == 429:
        hint = (
            "The provider is rate-limiting this key: lower the request rate or concurrency, "
            "or request a higher usage tier (rate limit) from the provider."
        )
    elif isinstance(error, ProviderConnectionError) and error.reason == "timeout":
        hint = (
            f"The provider did not answer in time; this is not a problem with the key. "
            f"Check {status_page} and the network, then retry later."
        )
    elif isinstance(error, ProviderConnectionError):
        hint = (
            f"The provider could not be reached; this is not a problem with the key. "
            f"Check the network and proxy settings and {status_page}."
        )
    else:
        hint = (
            f"The provider is failing or overloaded; this is not a problem with the key. "
            f"Check {status_page} and retry later."
        )
    if budget.refused_wait_s is not None:
        remaining = max(budget.max_total_s - budget.elapsed(), 0.0)
        hint += (
            f" The provider asked to wait {budget.refused_wait_s:.0f} s, longer than the "
            f"{remaining:.1f} s left of the retry budget."
        )
    return hint


def call_with_backoff(
    fn: Callable[[], T],
    *,
    provider: str,
    max_attempts: int = 5,
    max_total_s: float = 60.0,
    initial_s: float = 1.0,
    max_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> T:
    """Call `fn` and retry temporary provider failures within a bounded budget.

    Waits are full-jitter exponential (seconds): attempt n waits a uniform
    random time up to ``min(max_s, initial_s * 2**(n-1))``, and at least the
    Retry-After the provider sent. The loop stops after `max_attempts` calls,
    or before a wait that would end past `max_total_s` since the first call.
    So a Retry-After longer than the remaining budget ends the loop at once
    instead of sleeping.

    Raises the `ProviderHTTPError` of a non-retryable status unchanged, and
    `ProviderCallError` (attempts, last status, advice) when retries run out.
    Never raises tenacity's RetryError. `sleep`, `clock`, `wall_clock` (for
    Retry-After dates) and `rng` are injectable for tests.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if max_total_s <= 0 or initial_s < 0 or max_s < 0:
        raise ValueError("max_total_s must be positive; initial_s and max_s must not be negative")

    budget = _Budget(max_attempts, max_total_s, clock)

    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        logger.warning(
            "%s call failed (%s), attempt %d of %d; retrying in %.2f s",
            provider,
            _describe(retry_state.outcome.exception()),
            retry_state.attempt_number,
            max_attempts,
            retry_state.upcoming_sleep,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        wait=_JitteredWait(initial_s, max_s, rng or random.Random(), wall_clock),
        stop=_StopOnBudget(budget, wall_clock),
        sleep=sleep,
        before_sleep=log_retry,
        retry_error_callback=_GaveUp,
    )
    result = retrying(fn)
    if not isinstance(result, _GaveUp):
        return result

    # Raised here, outside any except block, so the exception has no chained
    # context whose frames could reference request headers.
    error = result.error
    status = error.status if isinstance(error, ProviderHTTPError) else None
    reason = error.reason if isinstance(error, ProviderConnectionError) else ""
    name = PROVIDERS[provider].display_name if provider in PROVIDERS else provider
    hint = _hint(provider, error, budget)
    elapsed = budget.elapsed()
    message = (
        f"{name} call failed after {result.attempts} attempt(s) in {elapsed:.1f} s; "
        f"last error: {_describe(error)}. {hint}"
    )
    raise ProviderCallError(
        message,
        provider,
        attempts=result.attempts,
        last_status=status,
        last_reason=reason,
        elapsed_s=elapsed,
        hint=hint,
    )

