"""A keystore stand-in for retry tests: replies to each call from a script, or forwards it to the real keystore.

It serves mTLS with the deployment's real keystore certificate, so the real
KeyClient connects to it unchanged. Each script entry is a grpc.StatusCode to
fail with, "forward" to pass the call to the real keystore, or
"forward-then-fail" to apply the call on the real keystore and then lose the
reply with UNAVAILABLE.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc

from splitkey.config import load_client_config
from splitkey.tls import client_credentials
from splitkey.v1 import keystore_pb2_grpc


class ScriptedKeystore(keystore_pb2_grpc.KeystoreServicer):
    def __init__(self, deployment_root, scripts: dict[str, list]):
        self.scripts = {method: list(steps) for method, steps in scripts.items()}
        self.calls: list[tuple[str, float, bytes]] = []
        self._lock = threading.Lock()
        worker = load_client_config(deployment_root / "client-app.toml")
        # Forwarding needs a client identity the real keystore accepts for the method.
        self._forward = {}
        for role in ("app", "worker"):
            config = load_client_config(deployment_root / f"client-{role}.toml")
            credentials, _info = client_credentials(config.keystore.tls)
            channel = grpc.secure_channel(config.keystore.address, credentials)
            self._forward[role] = keystore_pb2_grpc.KeystoreStub(channel)
        self._tls = worker.keystore.tls
        root = deployment_root
        self._server_files = (root / "keystore" / "server.key", root / "keystore" / "server.pem", root / "ca" / "keystore-ca.pem")

    def _step(self, method: str, request, context, role: str):
        with self._lock:
            self.calls.append((method, time.monotonic(), request.SerializeToString()))
            steps = self.scripts.get(method, [])
            # The last step repeats; a method without a script is forwarded.
            if len(steps) > 1:
                step = steps.pop(0)
            elif steps:
                step = steps[0]
            else:
                step = "forward"
        if isinstance(step, grpc.StatusCode):
            context.abort(step, f"scripted {step.name}")
        reply = getattr(self._forward[role], method)(request, timeout=5)
        if step == "forward-then-fail":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: reply lost after the call took effect")
        return reply

    def PutKey(self, request, context):
        return self._step("PutKey", request, context, "app")

    def FetchKey(self, request, context):
        return self._step("FetchKey", request, context, "worker")

    def ListKeys(self, request, context):
        return self._step("ListKeys", request, context, "app")

    def serve(self) -> tuple[grpc.Server, int]:
        key_path, cert_path, ca_path = self._server_files
        credentials = grpc.ssl_server_credentials(
            [(key_path.read_bytes(), cert_path.read_bytes())],
            root_certificates=ca_path.read_bytes(),
            require_client_auth=True,
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        keystore_pb2_grpc.add_KeystoreServicer_to_server(self, server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        return server, port
