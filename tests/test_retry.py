"""Which failures the client retries, how often, and what the caller catches."""

from __future__ import annotations

import shutil
import tomllib

import grpc
import pytest
import tenacity
import tomli_w

from client import KeyClient
from splitkey.errors import (
    ConflictError,
    IntegrityError,
    PermissionDeniedError,
    SplitkeyError,
    TransportError,
)
from splitkey.v1 import keystore_pb2, keystore_pb2_grpc
from tests.scripted_keystore import ScriptedKeystore

U = grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def stored(deployment, app):
    app.add_key("ws-retry", "openai", "sk-proj-TESTONLY-retry0000aaaa")
    return "ws-retry"


def _client_via(deployment, tmp_path, port: int, role: str, retry: dict) -> KeyClient:
    """A client of `role` whose keystore address points at the scripted stand-in."""
    source = deployment.client_config(role)
    config = tomllib.loads(source.read_text())
    config["keystore"]["address"] = f"127.0.0.1:{port}"
    config["retry"] = retry
    for table in ("keystore", "secret"):
        for name in ("cert", "key", "ca"):
            config[table][name] = str((source.parent / config[table][name]).resolve())
    path = tmp_path / f"client-{role}-scripted.toml"
    path.write_text(tomli_w.dumps(config))
    return KeyClient.from_config(path, harden=False)


@pytest.fixture
def scripted(deployment):
    started = []

    def start(scripts):
        stand_in = ScriptedKeystore(deployment.root, scripts)
        server, port = stand_in.serve()
        started.append(server)
        return stand_in, port

    yield start
    for server in started:
        server.stop(0)


RETRY = {"max_attempts": 5, "initial_backoff_s": 0.05, "max_backoff_s": 0.4, "total_timeout_s": 10.0}


def test_permission_denied_is_tried_once(deployment, tmp_path, scripted, stored):
    stand_in, port = scripted({"FetchKey": [grpc.StatusCode.PERMISSION_DENIED]})
    with _client_via(deployment, tmp_path, port, "worker", RETRY) as worker:
        with pytest.raises(PermissionDeniedError) as caught:
            worker.decrypt(stored, "openai")
    assert not isinstance(caught.value, tenacity.RetryError)
    assert isinstance(caught.value, SplitkeyError)
    assert len(stand_in.calls) == 1


def test_unavailable_twice_then_ok_takes_three_attempts(deployment, tmp_path, scripted, stored):
    stand_in, port = scripted({"FetchKey": [U, U, "forward"]})
    with _client_via(deployment, tmp_path, port, "worker", RETRY) as worker:
        key = worker.decrypt(stored, "openai")
    assert key.reveal() == "sk-proj-TESTONLY-retry0000aaaa"
    times = [at for method, at, _ in stand_in.calls if method == "FetchKey"]
    assert len(times) == 3
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    assert first_wait >= 0.05
    assert second_wait >= 0.1


def test_unavailable_forever_stops_at_attempt_cap(deployment, tmp_path, scripted, stored):
    stand_in, port = scripted({"FetchKey": [U]})
    with _client_via(deployment, tmp_path, port, "worker", RETRY) as worker:
        with pytest.raises(TransportError) as caught:
            worker.decrypt(stored, "openai")
    assert caught.value.code == "UNAVAILABLE"
    assert len(stand_in.calls) == RETRY["max_attempts"]


def test_unavailable_forever_stops_at_time_cap(deployment, tmp_path, scripted, stored):
    stand_in, port = scripted({"FetchKey": [U]})
    policy = {"max_attempts": 1000, "initial_backoff_s": 0.1, "max_backoff_s": 0.2, "total_timeout_s": 1.0}
    with _client_via(deployment, tmp_path, port, "worker", policy) as worker:
        with pytest.raises(TransportError):
            worker.decrypt(stored, "openai")
    attempts = len(stand_in.calls)
    assert 2 <= attempts < 20


def test_integrity_failure_is_not_retried(deployment, tmp_path, scripted, stored):
    stand_in, port = scripted({"FetchKey": [grpc.StatusCode.DATA_LOSS]})
    with _client_via(deployment, tmp_path, port, "worker", RETRY) as worker:
        with pytest.raises(IntegrityError):
            worker.decrypt(stored, "openai")
    assert len(stand_in.calls) == 1


def test_lost_write_reply_takes_effect_once(deployment, tmp_path, scripted):
    stand_in, port = scripted({"PutKey": ["forward-then-fail", "forward"]})
    with _client_via(deployment, tmp_path, port, "app", RETRY) as app:
        added = app.add_key("ws-lost-reply", "openai", "sk-proj-TESTONLY-lostreply1234")
    put_calls = [body for method, _, body in stand_in.calls if method == "PutKey"]
    assert len(put_calls) == 2
    assert put_calls[0] == put_calls[1], "the retry must repeat the same request id and content"
    with deployment.client("app") as direct:
        records = direct.list_keys("ws-lost-reply")
    assert [r.record_id for r in records] == [added.record_id]


def test_reused_request_id_with_other_content_rejected(deployment, app):
    app.add_key("ws-reuse", "openai", "sk-proj-TESTONLY-reuse00001111")
    with deployment.client("app") as client:
        stub = keystore_pb2_grpc.KeystoreStub(client._keystore.channel)
        first = _put_request(deployment, "ws-reuse-b", request_id="reuse-request-0001")
        stub.PutKey(first, timeout=5)
        assert stub.PutKey(first, timeout=5).record_id == first.context.record_id
        second = _put_request(deployment, "ws-reuse-b", request_id="reuse-request-0001")
        with pytest.raises(grpc.RpcError) as caught:
            stub.PutKey(second, timeout=5)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "request_id" in caught.value.details()
    assert issubclass(ConflictError, SplitkeyError)


def _put_request(deployment, workspace: str, request_id: str) -> keystore_pb2.PutKeyRequest:
    import os

    from splitkey import record
    from splitkey.context import Context
    from splitkey.v1 import secret_pb2, secret_pb2_grpc

    context = Context(deployment="splitkey.test", workspace=workspace, provider="openai", record_id=os.urandom(16).hex())
    dek = os.urandom(32)
    share_a, share_b = record.split_dek(dek)
    with deployment.client("app") as client:
        secret_stub = secret_pb2_grpc.SecretServerStub(client._secret.channel)
        wrap_b = secret_stub.WrapShare(
            secret_pb2.WrapShareRequest(request_id=os.urandom(8).hex(), context=context.to_proto(), share_b=share_b),
            timeout=5,
        ).wrap_b
    return keystore_pb2.PutKeyRequest(
        request_id=request_id,
        context=context.to_proto(),
        ciphertext=record.seal_content(dek, b"sk-proj-TESTONLY-x", context),
        share_a=share_a,
        wrap_b=wrap_b,
        key_hint="sk-p…ly-x",
        key_digest=bytes(32),
    )


def test_retried_write_after_kek_activation_replays(tmp_path):
    """A PutKey retried after a KEK-A version was activated gets its stored reply, not a conflict."""
    from client.admin_client import AdminClient
    from tests.servers import Deployment

    deployment = Deployment.create(tmp_path / "dev").start()
    try:
        with deployment.client("app") as client:
            client.set_mode("ws-replay-rotated", "byok")
            stub = keystore_pb2_grpc.KeystoreStub(client._keystore.channel)
            request = _put_request(deployment, "ws-replay-rotated", request_id="replay-after-rotate-01")
            first = stub.PutKey(request, timeout=5)
            with AdminClient.from_config(deployment.client_config("security")) as admin:
                version = admin.add_version("kek-a")
                admin.activate_version("kek-a", version)
            again = stub.PutKey(request, timeout=5)
        assert again == first
    finally:
        deployment.stop()
