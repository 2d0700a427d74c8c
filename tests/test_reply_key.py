"""Low-order X25519 reply keys are rejected before any share is unwrapped."""

from __future__ import annotations

import uuid

import grpc
import pytest

from splitkey.v1 import keystore_pb2, keystore_pb2_grpc

# Two low-order points of Curve25519 in Montgomery form: 0 and 1.
LOW_ORDER = [bytes(32), bytes([1]) + bytes(31)]


@pytest.fixture(scope="module")
def stored(app):
    app.add_key("ws-reply-key", "openai", "sk-proj-TESTONLY-replykey00001111")
    return "ws-reply-key"


@pytest.mark.parametrize("reply_key", LOW_ORDER, ids=["zero", "one"])
def test_low_order_reply_key_rejected(deployment, worker, stored, reply_key):
    stub = keystore_pb2_grpc.KeystoreStub(worker._keystore.channel)
    request = keystore_pb2.FetchKeyRequest(
        request_id=uuid.uuid4().hex, workspace=stored, model="openai", reply_key=reply_key
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.FetchKey(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reply_key" in caught.value.details()
    assert worker.decrypt(stored, "openai").reveal().startswith("sk-proj-TESTONLY-replykey")
    assert "Traceback" not in deployment.keystore.stderr()
