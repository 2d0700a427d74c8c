"""The provider side of the client: key cleanup, format checks, live checks and retries.

Independent of the gRPC core: nothing here talks to the splitkey servers.
"""

from .backoff import call_with_backoff, is_retryable, retry_after_seconds
from .endpoints import ProviderEndpoints
from .errors import ProviderCallError, ProviderConnectionError, ProviderError, ProviderHTTPError
from .formats import KNOWN_PROVIDERS, PROVIDERS, check_key_format, get_provider, parse_model
from .normalize import KEY_MAX_BYTES, normalize_pasted_key
from .outcomes import CheckOutcome, CheckResult
from .ratelimit import CheckRateLimiter
from .verify import CheckRetryPolicy, verify_key

__all__ = [
    "KEY_MAX_BYTES",
    "KNOWN_PROVIDERS",
    "PROVIDERS",
    "CheckOutcome",
    "CheckRateLimiter",
    "CheckResult",
    "CheckRetryPolicy",
    "ProviderCallError",
    "ProviderConnectionError",
    "ProviderEndpoints",
    "ProviderError",
    "ProviderHTTPError",
    "call_with_backoff",
    "check_key_format",
    "get_provider",
    "is_retryable",
    "normalize_pasted_key",
    "parse_model",
    "retry_after_seconds",
    "verify_key",
]
