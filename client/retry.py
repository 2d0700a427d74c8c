"""Bounded retries of transient transport failures, and nothing else.

Only UNAVAILABLE and DEADLINE_EXCEEDED are retried, with exponential backoff
and jitter, until the attempt cap or the total time cap. Denials, invalid
input, integrity failures and audit failures are raised at once. A failed TLS
handshake is reported as UNAVAILABLE by grpc but is not transient, so it is
not retried either. Callers always get a splitkey error, never
tenacity.RetryError or grpc.RpcError.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, TypeVar

import grpc
import tenacity

from splitkey.config import RetryPolicy
from splitkey.errors import TransportError
from splitkey.rpc.status import RETRYABLE_CODES, error_from_rpc

_logger = logging.getLogger(__name__)
T = TypeVar("T")

# grpc reports a rejected certificate as UNAVAILABLE with text like
# "Ssl handshake failed ... CERTIFICATE_VERIFY_FAILED"; waiting will not fix it.
_HANDSHAKE_FAILURE = re.compile(r"handshake|certificate|ssl_error|tsi_", re.IGNORECASE)


class NotRetriedTransportError(TransportError):
    """A transport failure that retrying cannot fix, such as a rejected certificate."""


def translate(rpc_error: grpc.RpcError, server: str):
    error = error_from_rpc(rpc_error, server)
    details = rpc_error.details() or ""
    if rpc_error.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details.lower():
        return TransportError(
            f"{server}: not reachable ({details}); check that the server is running and that the address in the "
            "client configuration is right",
            rpc_error.code().name,
        )
    if isinstance(error, TransportError) and rpc_error.code() in RETRYABLE_CODES:
        if _HANDSHAKE_FAILURE.search(rpc_error.details() or ""):
            return NotRetriedTransportError(
                f"{server}: TLS handshake failed; check the client certificate, its chain and the CA file "
                f"({rpc_error.details()})",
                rpc_error.code().name,
            )
    return error


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, TransportError) and not isinstance(error, NotRetriedTransportError) and error.code in {
        code.name for code in RETRYABLE_CODES
    }


def call_with_retry(call: Callable[[], T], *, server: str, policy: RetryPolicy, sleep=tenacity.nap.sleep) -> T:
    """Run `call` (one RPC), translating errors and retrying the transient ones within `policy`."""

    def attempt() -> T:
        try:
            return call()
        except grpc.RpcError as rpc_error:
            raise translate(rpc_error, server) from None

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_after_delay(policy.total_timeout_s),
        # Waits of initial·2^n plus up to `initial` of jitter, capped at max_backoff_s.
        wait=tenacity.wait_exponential_jitter(
            multiplier=policy.initial_backoff_s, jitter=policy.initial_backoff_s, max=policy.max_backoff_s
        ),
        retry=tenacity.retry_if_exception(_is_retryable),
        before_sleep=lambda state: _logger.warning(
            "%s call failed (attempt %d): %s; retrying in %.2f s",
            server, state.attempt_number, state.outcome.exception(), state.next_action.sleep,
        ),
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)
