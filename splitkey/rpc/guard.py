"""The server-side boundary of every RPC: identity, the per-RPC allow-list, and error mapping.

`Guard` is a gRPC server interceptor. For each call it reads the verified
client certificate, derives the caller's identity, checks the role against
the allow-list (methods not listed are denied to everyone), runs the handler,
and turns splitkey errors into fixed statuses. An unexpected exception is
logged with its type and traceback and reaches the caller only as INTERNAL,
so no handler's exception text leaks. Handlers raise splitkey errors; they
never call `context.abort` themselves.

Every call, allowed or denied, is passed to the audit hook as an AuditEvent
before its reply leaves. Handlers attach ids to the event with
`note_audit(workspace=..., record_id=...)`. When the hook raises
AuditUnavailableError the reply is replaced by UNAVAILABLE, so nothing a
handler produced is released without its audit entry.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable, Mapping

import grpc

from splitkey import errors
from splitkey.identity import Identity, IdentityError, identity_from_grpc_context
from splitkey.rpc.status import ERROR_KIND_KEY, status_for

_logger = logging.getLogger(__name__)
_current_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("splitkey_identity")
_audit_details: contextvars.ContextVar[dict] = contextvars.ContextVar("splitkey_audit_details")

_HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Fields a handler may attach to its audit event; values are ids, versions and a short
# reason (which replaces the guard's own for that call), never secrets.
AUDIT_FIELDS = frozenset(
    {"workspace", "provider", "record_id", "key_versions", "request_id", "context_hash", "job_id", "reason"}
)


@dataclass(frozen=True)
class AuditEvent:
    """One finished call, as the audit hook receives it."""

    method: str
    identity: Identity | None
    peer: str
    # "allowed", "denied" or "error".
    outcome: str
    reason: str
    details: dict = field(default_factory=dict)


AuditHook = Callable[[AuditEvent], None]


def current_identity() -> Identity:
    """Return the identity of the caller of the RPC being handled on this thread."""
    return _current_identity.get()


def note_audit(**fields: str) -> None:
    """Attach ids (workspace, record_id, ...) to the audit event of the call being handled."""
    unknown = set(fields) - AUDIT_FIELDS
    if unknown:
        raise ValueError(f"unknown audit fields: {', '.join(sorted(unknown))}")
    details = _audit_details.get(None)
    if details is not None:
        details.update({name: str(value) for name, value in fields.items()})


class Guard(grpc.ServerInterceptor):
    def __init__(self, trust_domain: str, allow: Mapping[str, frozenset[str]], audit: AuditHook | None = None):
        self._trust_domain = trust_domain
        self._allow = dict(allow)
        self._audit = audit

    def set_audit(self, audit: AuditHook | None) -> None:
        self._audit = audit

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            # Health needs a verified client certificate (TLS enforces that) but no role.
            return handler
        roles = self._allow.get(method, frozenset())
        # Requests arrive as raw bytes and are parsed after authorization, so a
        # malformed body from an unauthorized caller is denied (and audited), and
        # one from an authorized caller gets INVALID_ARGUMENT instead of grpc's
        # INTERNAL "Exception deserializing request".
        parse = handler.request_deserializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(method, roles, handler.unary_unary, streaming=False, parse=parse),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap(method, roles, handler.unary_stream, streaming=True, parse=parse),
                response_serializer=handler.response_serializer,
            )
        _logger.error("method %s has a streaming shape the guard does not support; denying", method)
        return None

    def _deny(self, context, method: str, identity: Identity | None, reason: str):
        who = identity.uri if identity else "unidentified peer"
        _logger.warning("denied %s for %s (%s): %s", method, who, context.peer(), reason)
        try:
            self._record(AuditEvent(method, identity, context.peer(), "denied", reason))
        except errors.AuditUnavailableError:
            # The caller is denied either way; the log writes a late entry once it recovers.
            _logger.error("audit log unavailable while recording a denial of %s for %s", method, who)
        context.set_trailing_metadata(((ERROR_KIND_KEY, "permission-denied"),))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    def _record(self, event: AuditEvent) -> None:
        if self._audit is not None:
            self._audit(event)

    def _outcome(self, error: Exception) -> str:
        return "denied" if isinstance(error, errors.PermissionDeniedError) else "error"

    def _authorize(self, context, method: str, roles: frozenset[str]) -> Identity:
        try:
            identity = identity_from_grpc_context(context, self._trust_domain)
        except IdentityError as error:
            self._deny(context, method, None, f"client certificate rejected: {error}")
        if identity.role not in roles:
            allowed = ", ".join(sorted(roles)) or "no role"
            name = method.rsplit("/", 1)[-1]
            self._deny(
                context, method, identity,
                f"role '{identity.role}' may not call {name} (allowed: {allowed}); "
                "use the client configuration of an allowed role",
            )
        return identity

    def _failure(self, context, method: str, identity: Identity, error: Exception) -> tuple[grpc.StatusCode, str]:
        if isinstance(error, errors.SplitkeyError) and status_for(error)[0] != grpc.StatusCode.INTERNAL:
            code, message, kind = status_for(error)
            _logger.info("%s for %s failed: %s %s", method, identity.uri, code.name, message)
        else:
            # Unexpected errors, and splitkey errors with no status of their own
            # (such as a ConfigError from a keyring reload), are the server's fault.
            kind = "internal"
            reference = uuid.uuid4().hex[:12]
            _logger.error(
                "unexpected %s in %s for %s, reference %s",
                type(error).__name__, method, identity.uri, reference, exc_info=error,
            )
            code, message = grpc.StatusCode.INTERNAL, f"internal error, reference {reference} in the server log"
        context.set_trailing_metadata(((ERROR_KIND_KEY, kind),))
        return code, message

    def _record_failure(self, method, identity, context, failure, error, details) -> None:
        """Audit a failed call; an audit failure then only adds to the log, the caller already fails."""
        try:
            self._record(AuditEvent(method, identity, context.peer(), self._outcome(error), failure[1], details))
        except errors.AuditUnavailableError:
            _logger.error("audit log unavailable while recording a failed %s for %s", method, identity.uri)

    def _wrap(self, method: str, roles: frozenset[str], behavior, streaming: bool, parse):
        name = method.rsplit("/", 1)[-1]

        def parsed(raw: bytes):
            if parse is None:
                return raw
            try:
                return parse(raw)
            except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others on bad input
                raise errors.InvalidInputError(
                    f"request body is not a valid {name} request message; send a serialized protobuf of the right type"
                ) from None

        def guarded_unary(raw_request, context):
            identity = self._authorize(context, method, roles)
            details: dict = {}
            tokens = (_current_identity.set(identity), _audit_details.set(details))
            try:
                response = behavior(parsed(raw_request), context)
                # The entry is durable before the reply leaves; if it cannot be
                # written, the reply is dropped.
                self._record(AuditEvent(method, identity, context.peer(), "allowed", "", details))
                return response
            except Exception as error:  # noqa: BLE001 - this is the error boundary
                failure = self._failure(context, method, identity, error)
                if not isinstance(error, errors.AuditUnavailableError):
                    self._record_failure(method, identity, context, failure, error, details)
            finally:
                _current_identity.reset(tokens[0])
                _audit_details.reset(tokens[1])
            # Abort outside the except block: abort works by raising.
            context.abort(*failure)

        def guarded_stream(raw_request, context):
            identity = self._authorize(context, method, roles)
            details: dict = {}
            tokens = (_current_identity.set(identity), _audit_details.set(details))
            try:
                request = parsed(raw_request)
                # Streams are audited when they start: the entry names what was asked for.
                self._record(AuditEvent(method, identity, context.peer(), "allowed", "", details))
                yield from behavior(request, context)
                return
            except Exception as error:  # noqa: BLE001 - this is the error boundary
                failure = self._failure(context, method, identity, error)
                if not isinstance(error, errors.AuditUnavailableError):
                    self._record_failure(method, identity, context, failure, error, details)
            finally:
                _current_identity.reset(tokens[0])
                _audit_details.reset(tokens[1])
            context.abort(*failure)

        return guarded_stream if streaming else guarded_unary
