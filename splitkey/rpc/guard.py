"""The server-side boundary of every RPC: identity, the per-RPC allow-list, and error mapping.

`Guard` is a gRPC server interceptor. For each call it reads the verified
client certificate, derives the caller's identity, checks the role against
the allow-list (methods not listed are denied to everyone), runs the handler,
and turns splitkey errors into fixed statuses. An unexpected exception is
logged with its type and traceback and reaches the caller only as INTERNAL,
so no handler's exception text leaks. Handlers raise splitkey errors; they
never call `context.abort` themselves.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from typing import Callable, Mapping

import grpc

from splitkey import errors
from splitkey.identity import Identity, IdentityError, identity_from_grpc_context
from splitkey.rpc.status import ERROR_KIND_KEY, status_for

_logger = logging.getLogger(__name__)
_current_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("splitkey_identity")

_HEALTH_PREFIX = "/grpc.health.v1.Health/"

# Called for every denial the guard itself decides: (method, identity or None, reason).
DenialHook = Callable[[str, Identity | None, str], None]


def current_identity() -> Identity:
    """Return the identity of the caller of the RPC being handled on this thread."""
    return _current_identity.get()


class Guard(grpc.ServerInterceptor):
    def __init__(self, trust_domain: str, allow: Mapping[str, frozenset[str]], on_denied: DenialHook | None = None):
        self._trust_domain = trust_domain
        self._allow = dict(allow)
        self._on_denied = on_denied

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            # Health needs a verified client certificate (TLS enforces that) but no role.
            return handler
        roles = self._allow.get(method, frozenset())
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(method, roles, handler.unary_unary, streaming=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap(method, roles, handler.unary_stream, streaming=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        _logger.error("method %s has a streaming shape the guard does not support; denying", method)
        return None

    def _deny(self, context, method: str, identity: Identity | None, reason: str):
        who = identity.uri if identity else "unidentified peer"
        _logger.warning("denied %s for %s (%s): %s", method, who, context.peer(), reason)
        if self._on_denied is not None:
            try:
                self._on_denied(method, identity, reason)
            except errors.AuditUnavailableError:
                _logger.error("audit log unavailable while recording a denial of %s", method)
        context.set_trailing_metadata(((ERROR_KIND_KEY, "permission-denied"),))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    def _authorize(self, context, method: str, roles: frozenset[str]) -> Identity:
        try:
            identity = identity_from_grpc_context(context, self._trust_domain)
        except IdentityError as error:
            self._deny(context, method, None, f"client certificate rejected: {error}")
        if identity.role not in roles:
            allowed = ", ".join(sorted(roles)) or "no role"
            name = method.rsplit("/", 1)[-1]
            self._deny(context, method, identity, f"role '{identity.role}' may not call {name} (allowed: {allowed})")
        return identity

    def _failure(self, context, method: str, identity: Identity, error: Exception) -> tuple[grpc.StatusCode, str]:
        if isinstance(error, errors.SplitkeyError):
            code, message, kind = status_for(error)
            _logger.info("%s for %s failed: %s %s", method, identity.uri, code.name, message)
        else:
            kind = "internal"
            reference = uuid.uuid4().hex[:12]
            _logger.error(
                "unexpected %s in %s for %s, reference %s",
                type(error).__name__, method, identity.uri, reference, exc_info=error,
            )
            code, message = grpc.StatusCode.INTERNAL, f"internal error, reference {reference} in the server log"
        context.set_trailing_metadata(((ERROR_KIND_KEY, kind),))
        return code, message

    def _wrap(self, method: str, roles: frozenset[str], behavior, streaming: bool):
        def guarded_unary(request, context):
            identity = self._authorize(context, method, roles)
            token = _current_identity.set(identity)
            try:
                return behavior(request, context)
            except Exception as error:  # noqa: BLE001 - this is the error boundary
                failure = self._failure(context, method, identity, error)
            finally:
                _current_identity.reset(token)
            # Abort outside the except block: abort works by raising.
            context.abort(*failure)

        def guarded_stream(request, context):
            identity = self._authorize(context, method, roles)
            token = _current_identity.set(identity)
            try:
                yield from behavior(request, context)
                return
            except Exception as error:  # noqa: BLE001 - this is the error boundary
                failure = self._failure(context, method, identity, error)
            finally:
                _current_identity.reset(token)
            context.abort(*failure)

        return guarded_stream if streaming else guarded_unary
