"""PutKey with a wrap_b whose KEK-B version was retired after WrapShare: rejected, and add_key recovers."""

from __future__ import annotations

import logging
import os
import threading
import time

import grpc
import pytest

from client import KeyClient
from splitkey import record
from splitkey.context import Context
from splitkey.pki.deployment import issue_client
from splitkey.rpc.status import ERROR_KIND_KEY
from splitkey.v1 import keystore_pb2, secret_pb2
from tests import raw_rpc
from tests import rotation_support as support
from tests.servers import Deployment

STALE_MESSAGE = "wrap_b was made under KEK-B version 1, which is retired; call WrapShare again"


@pytest.fixture
def deployment(tmp_path):
    running = Deployment.create(tmp_path / "dev").start()
    issue_client(running.root, "security", "second")
    support.add_keys(running, 3)
    yield running
    running.stop()


def _rotate_kek_b(deployment) -> None:
    with support.admin(deployment) as admin:
        admin.rotate("kek-b")
        assert support.wait_for_job(admin, "kek-b").state == "done"


def _retire_kek_b_1(deployment) -> None:
    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        assert first.retire("kek-b", 1).state == "pending-approval"
        assert second.retire("kek-b", 1).state == "retired"


def _put_request(deployment, workspace: str) -> keystore_pb2.PutKeyRequest:
    """Split a fresh DEK, call WrapShare on the secret server now, and build the PutKey request for later."""
    context = Context(deployment=support.TRUST_DOMAIN, workspace=workspace, provider="openai",
                      record_id=os.urandom(16).hex())
    dek = os.urandom(record.DEK_BYTES)
    share_a, share_b = record.split_dek(dek)
    channel = raw_rpc.raw_channel(deployment, "app", "secret")
    try:
        wrap_b = raw_rpc.secret_stub(channel).WrapShare(
            secret_pb2.WrapShareRequest(request_id=os.urandom(8).hex(), context=context.to_proto(), share_b=share_b),
            timeout=10,
        ).wrap_b
    finally:
        channel.close()
    return keystore_pb2.PutKeyRequest(
        request_id=os.urandom(8).hex(),
        context=context.to_proto(),
        ciphertext=record.seal_content(dek, support.api_key(900).encode(), context),
        share_a=share_a,
        wrap_b=wrap_b,
        key_hint="sk-p…abcd",
        key_digest=bytes(32),
    )


def _put(deployment, request: keystore_pb2.PutKeyRequest) -> keystore_pb2.PutKeyResponse:
    channel = raw_rpc.raw_channel(deployment, "app", "keystore")
    try:
        return raw_rpc.keystore_stub(channel).PutKey(request, timeout=30)
    finally:
        channel.close()


def _error_kind(error: grpc.RpcError) -> str:
    return dict(error.trailing_metadata() or ()).get(ERROR_KIND_KEY, "")


def test_put_key_rejects_retired_wrap_b(deployment):
    request = _put_request(deployment, "ws-slow")
    assert record.wrap_version(request.wrap_b) == 1
    _rotate_kek_b(deployment)
    _retire_kek_b_1(deployment)

    with pytest.raises(grpc.RpcError) as caught:
        _put(deployment, request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_kind(caught.value) == "key-version"
    assert STALE_MESSAGE in caught.value.details()
    stored = support.rows(deployment)
    assert request.context.record_id not in stored
    assert {row["kek_b_version"] for row in stored.values()} == {2}


def test_put_key_rejects_unknown_kek_b_version(deployment):
    request = _put_request(deployment, "ws-unknown")
    request.wrap_b = (7).to_bytes(4, "big") + request.wrap_b[4:]

    with pytest.raises(grpc.RpcError) as caught:
        _put(deployment, request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_kind(caught.value) == "key-version"
    assert "KEK-B version 7, which the secret server does not hold" in caught.value.details()
    assert request.context.record_id not in support.rows(deployment)


class _RetireAfterWrapClient(KeyClient):
    """A KeyClient that rotates KEK-B and retires version 1 right after its first WrapShare returns."""

    def __init__(self, *args, deployment, **kwargs):
        super().__init__(*args, **kwargs)
        self._deployment = deployment
        self.methods: list[str] = []

    def _call(self, channel, method, request):
        self.methods.append(method)
        reply = super()._call(channel, method, request)
        if method == "WrapShare" and self.methods.count("WrapShare") == 1:
            _rotate_kek_b(self._deployment)
            _retire_kek_b_1(self._deployment)
        return reply


def test_add_key_wraps_again_after_retirement(deployment, caplog):
    value = support.api_key(901)
    caplog.set_level(logging.WARNING, logger="client.key_client")
    with _RetireAfterWrapClient.from_config(deployment.client_config("app"), harden=False,
                                            deployment=deployment) as app:
        app.set_mode("ws-race", "byok")
        added = app.add_key("ws-race", "openai", value)
        methods = list(app.methods)

    assert methods == ["SetMode", "WrapShare", "PutKey", "WrapShare", "PutKey"]
    assert added.kek_b_version == 2
    assert support.rows(deployment)[added.record_id]["kek_b_version"] == 2
    with deployment.client("worker") as worker:
        assert worker.decrypt("ws-race", "openai").reveal() == value
    assert any(STALE_MESSAGE in message for message in caplog.messages), caplog.messages


def test_retire_and_put_key_do_not_interleave(deployment):
    """A PutKey under version 1 and the approval of its retirement, released at once: exactly one wins."""
    request = _put_request(deployment, "ws-contended")
    assert record.wrap_version(request.wrap_b) == 1
    _rotate_kek_b(deployment)
    with support.admin(deployment) as first:
        assert first.retire("kek-b", 1).state == "pending-approval"
    outcomes: dict[str, object] = {}

    def put() -> None:
        try:
            outcomes["put"] = _put(deployment, request)
        except grpc.RpcError as error:
            outcomes["put"] = error

    def approve() -> None:
        with support.admin(deployment, "second") as second:
            try:
                outcomes["retire"] = second.retire("kek-b", 1)
            except Exception as error:  # noqa: BLE001 - the outcome is asserted on below
                outcomes["retire"] = error

    # Hold the keystore's write lock so both requests wait for it, then let them race.
    holder = raw_rpc.open_database(support.keystore_db(deployment))
    holder.execute("BEGIN IMMEDIATE")
    threads = [threading.Thread(target=approve), threading.Thread(target=put)]
    for thread in threads:
        thread.start()
        time.sleep(0.5)
    holder.execute("ROLLBACK")
    holder.close()
    for thread in threads:
        thread.join(60)

    put_stored = isinstance(outcomes["put"], keystore_pb2.PutKeyResponse)
    retired = getattr(outcomes["retire"], "state", "") == "retired"
    assert put_stored != retired, outcomes
    if put_stored:
        assert support.rows(deployment)[request.context.record_id]["kek_b_version"] == 1
        assert "still in use" in str(outcomes["retire"])
    else:
        assert STALE_MESSAGE in outcomes["put"].details()
        assert request.context.record_id not in support.rows(deployment)
