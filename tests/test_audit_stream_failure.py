"""A streaming call that fails after it started is audited with its failure."""

from __future__ import annotations

import grpc
import pytest

from splitkey.v1 import audit_pb2, audit_pb2_grpc
from tests.audit_server_support import audit_path, read_entries, wait_for
from tests.raw_rpc import raw_channel


def test_failed_stream_is_audited(deployment):
    channel = raw_channel(deployment, "auditor", "keystore")
    try:
        stub = audit_pb2_grpc.AuditLogStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.StreamEntries(audit_pb2.StreamEntriesRequest(outcome="sideways"), timeout=5))
    finally:
        channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def failure_logged():
        return [
            entry for entry in read_entries(audit_path(deployment, "keystore"))
            if entry.action == "StreamEntries" and entry.outcome == "error" and "outcome" in entry.reason
        ]

    assert wait_for(failure_logged, what="the failed StreamEntries entry")
