"""A client certificate reload does not cancel calls on the replaced channel."""

from __future__ import annotations

import os

from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.channels import ServerChannel
from splitkey.config import load_client_config


def test_replaced_channel_stays_open(deployment):
    config = load_client_config(deployment.client_config("worker"))
    channel = ServerChannel("keystore", config.keystore, health_pb2_grpc.HealthStub, expiry_warning_days=0)
    try:
        old_stub = channel.stub
        cert = config.keystore.tls.cert
        stat = os.stat(cert)
        os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        channel._checked_at = 0.0
        new_stub = channel.stub

        assert new_stub is not old_stub
        for stub in (old_stub, new_stub):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
