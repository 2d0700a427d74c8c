"""The exception tree that splitkey's callers catch.

    SplitkeyError                  base, never raised itself
    ├── ConfigError                a configuration or deployment file is unusable
    ├── InvalidInputError          a request field is malformed (INVALID_ARGUMENT)
    │   └── KeyFormatError         a pasted API key failed normalization or format checks
    ├── NotFoundError              unknown workspace, record or key (NOT_FOUND)
    ├── PermissionDeniedError      the caller's identity may not do this (PERMISSION_DENIED)
    ├── PreconditionError          the state forbids it now (FAILED_PRECONDITION)
    │   └── KeyVersionError        a KEK version is retired or not held by a server
    ├── ConflictError              a request id reused with other content (ALREADY_EXISTS)
    ├── ResourceExhaustedError     a size or rate limit was hit (RESOURCE_EXHAUSTED)
    ├── IntegrityError             any failed authentication of stored or returned data
    ├── AuditUnavailableError      the audit log could not be written; nothing was released
    └── TransportError             the server could not be reached in time (UNAVAILABLE,
                                   DEADLINE_EXCEEDED); carries the last gRPC status

IntegrityError carries no detail on purpose: every tampered, moved or
mismatched blob fails the same way, so an attacker learns nothing from which
check failed. The servers log the detail for their operators.
"""

from __future__ import annotations


class SplitkeyError(Exception):
    """Base of every error splitkey raises to its callers."""


class ConfigError(SplitkeyError):
    pass


class InvalidInputError(SplitkeyError):
    pass


class KeyFormatError(InvalidInputError):
    pass


class NotFoundError(SplitkeyError):
    pass


class PermissionDeniedError(SplitkeyError):
    pass


class PreconditionError(SplitkeyError):
    pass


class KeyVersionError(PreconditionError):
    pass


class ConflictError(SplitkeyError):
    pass


class ResourceExhaustedError(SplitkeyError):
    pass


class IntegrityError(SplitkeyError):
    """Stored or returned data failed authentication. Deliberately without detail."""

    MESSAGE = "integrity check failed"

    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)


class AuditUnavailableError(SplitkeyError):
    pass


class TransportError(SplitkeyError):
    """The server was unreachable or too slow; `code` is the last gRPC status code name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
