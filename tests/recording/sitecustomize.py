"""Record every unary request a splitkey server receives, for tests that assert on message contents.

Python loads this module at start-up when this folder is on PYTHONPATH. It
does nothing unless SPLITKEY_TEST_RECORD names a file. Then it wraps
grpc.server, so that an interceptor placed before the server's own guard
appends "<method> <base64 of the serialized request>" to that file for every
call.
"""

import base64
import os
import threading

_PATH = os.environ.get("SPLITKEY_TEST_RECORD")

if _PATH:
    import grpc

    _lock = threading.Lock()
    _real_server = grpc.server

    class _Recorder(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            if handler is None or handler.unary_unary is None:
                return handler
            inner = handler.unary_unary
            method = handler_call_details.method

            def record(request, context):
                payload = request if isinstance(request, bytes) else request.SerializeToString()
                line = f"{method} {base64.b64encode(payload).decode()}\n"
                with _lock, open(_PATH, "a") as handle:
                    handle.write(line)
                return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                record,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    def _server(*args, interceptors=None, **kwargs):
        return _real_server(*args, interceptors=[_Recorder(), *(interceptors or [])], **kwargs)

    grpc.server = _server
