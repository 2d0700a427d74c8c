"""The one place where splitkey errors become gRPC statuses, and back.

Every domain error maps to a fixed status code, and its kind travels in the
trailing metadata key `splitkey-error`, so the client can raise the same
exception class the server raised (a retired key version is a
FAILED_PRECONDITION, but a distinct one).
"""

from __future__ import annotations

import grpc

from splitkey import errors

ERROR_KIND_KEY = "splitkey-error"

# Ordered from most to least specific: the first isinstance match wins.
_KINDS: tuple[tuple[type[errors.SplitkeyError], str, grpc.StatusCode], ...] = (
    (errors.KeyFormatError, "key-format", grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidInputError, "invalid-input", grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, "not-found", grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDeniedError, "permission-denied", grpc.StatusCode.PERMISSION_DENIED),
    (errors.KeyVersionError, "key-version", grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PreconditionError, "precondition", grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConflictError, "conflict", grpc.StatusCode.ALREADY_EXISTS),
    (errors.ResourceExhaustedError, "resource-exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.IntegrityError, "integrity", grpc.StatusCode.DATA_LOSS),
    (errors.AuditUnavailableError, "audit-unavailable", grpc.StatusCode.UNAVAILABLE),
    (errors.TransportError, "transport", grpc.StatusCode.UNAVAILABLE),
)
_BY_KIND = {kind: cls for cls, kind, _code in _KINDS}

_BY_CODE: dict[grpc.StatusCode, type[errors.SplitkeyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidInputError,
    grpc.StatusCode.OUT_OF_RANGE: errors.InvalidInputError,
    grpc.StatusCode.NOT_FOUND: errors.NotFoundError,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: errors.PermissionDeniedError,
    grpc.StatusCode.FAILED_PRECONDITION: errors.PreconditionError,
    grpc.StatusCode.ALREADY_EXISTS: errors.ConflictError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhaustedError,
    grpc.StatusCode.DATA_LOSS: errors.IntegrityError,
}

# Codes a client may retry, for reads and for writes that carry a request id.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def status_for(error: errors.SplitkeyError) -> tuple[grpc.StatusCode, str, str]:
    """Return (code, message, kind) for a domain error raised by a handler."""
    for cls, kind, code in _KINDS:
        if isinstance(error, cls):
            message = errors.IntegrityError.MESSAGE if cls is errors.IntegrityError else str(error)
            return code, message, kind
    return grpc.StatusCode.INTERNAL, "internal error", "internal"


def error_kind(rpc_error: grpc.RpcError) -> str | None:
    metadata = rpc_error.trailing_metadata() if hasattr(rpc_error, "trailing_metadata") else None
    for key, value in metadata or ():
        if key == ERROR_KIND_KEY:
            return value
    return None


def error_from_rpc(rpc_error: grpc.RpcError, server: str) -> errors.SplitkeyError:
    """Translate a failed call into the splitkey exception a caller catches."""
    code = rpc_error.code()
    details = rpc_error.details() or ""
    kind = error_kind(rpc_error)
    if kind in _BY_KIND and kind not in ("transport",):
        cls = _BY_KIND[kind]
        if cls is errors.IntegrityError:
            return errors.IntegrityError()
        return cls(details)
    if code in RETRYABLE_CODES or code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED):
        return errors.TransportError(f"{server}: {code.name}: {details}", code.name)
    cls = _BY_CODE.get(code)
    if cls is errors.IntegrityError:
        return errors.IntegrityError()
    if cls is not None:
        return cls(f"{server}: {details}")
    return errors.TransportError(f"{server}: {code.name}: {details}", code.name)
