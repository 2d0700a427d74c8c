"""API modes: which key a worker gets, and who may write the platform's keys."""

from __future__ import annotations

import secrets
import sqlite3
import time

import grpc
import pytest

from splitkey.errors import NotFoundError, PermissionDeniedError, PreconditionError
from splitkey.v1 import secret_pb2, secret_pb2_grpc

PLATFORM_OPENAI = "sk-proj-TESTONLY-platform" + secrets.token_hex(8)
PLATFORM_ANTHROPIC = "sk-ant-api03-TESTONLY-platform" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def app(deployment):
    with deployment.client("app", byok_on_add=False) as client:
        yield client


@pytest.fixture(scope="module")
def security(deployment):
    with deployment.client("security") as client:
        client.add_key("platform", "openai", PLATFORM_OPENAI)
        client.add_key("platform", "anthropic", PLATFORM_ANTHROPIC)
        yield client


def _key(prefix: str = "sk-proj-TESTONLY-") -> str:
    return prefix + secrets.token_hex(16)


def test_new_workspace_defaults_to_platform(app, worker, security):
    app.add_key("ws-default", "openai", _key())
    with worker.use_key("ws-default", "openai/gpt-4o") as key:
        assert key.reveal() == PLATFORM_OPENAI
        assert key.resolution == "platform"


def test_byok_uses_workspace_key(app, worker, security):
    own = _key()
    app.set_mode("ws-byok", "byok")
    app.add_key("ws-byok", "openai", own)
    with worker.use_key("ws-byok", "openai/gpt-4o") as key:
        assert key.reveal() == own
        assert key.resolution == "byok"


def test_byok_falls_back_to_openrouter(app, worker, security):
    router = "sk-or-v1-" + secrets.token_hex(32)
    app.set_mode("ws-router", "byok")
    app.add_key("ws-router", "openrouter", router)
    with worker.use_key("ws-router", "anthropic/claude-sonnet-4") as key:
        assert key.reveal() == router
        assert key.provider == "openrouter"
        assert key.resolution == "openrouter-fallback"


def test_byok_prefers_provider_key_over_openrouter(app, worker, security):
    own = _key("sk-ant-api03-TESTONLY-")
    app.set_mode("ws-both", "byok")
    app.add_key("ws-both", "openrouter", "sk-or-v1-" + secrets.token_hex(32))
    app.add_key("ws-both", "anthropic", own)
    with worker.use_key("ws-both", "anthropic") as key:
        assert key.reveal() == own


def test_byok_without_key_names_key_to_add(app, worker, security):
    app.set_mode("ws-empty-byok", "byok")
    with pytest.raises(PreconditionError) as caught:
        worker.decrypt("ws-empty-byok", "google/gemini-2.5-pro")
    message = str(caught.value)
    assert "no google key" in message
    assert "openrouter" in message


def test_byok_never_falls_back_to_platform(app, worker, security):
    app.set_mode("ws-no-fallback", "byok")
    app.add_key("ws-no-fallback", "anthropic", _key("sk-ant-api03-TESTONLY-"))
    with pytest.raises(PreconditionError):
        worker.decrypt("ws-no-fallback", "openai")


def test_platform_mode_without_platform_key(app, worker, security):
    app.set_mode("ws-platform-google", "platform")
    with pytest.raises(PreconditionError, match="platform has no google key"):
        worker.decrypt("ws-platform-google", "google")


def test_switching_modes_loses_no_key(app, worker, security):
    own = _key()
    app.set_mode("ws-switch", "byok")
    app.add_key("ws-switch", "openai", own)
    for mode, expected in (("platform", PLATFORM_OPENAI), ("byok", own), ("platform", PLATFORM_OPENAI), ("byok", own)):
        info = app.set_mode("ws-switch", mode)
        assert list(info.providers) == ["openai"]
        with worker.use_key("ws-switch", "openai") as key:
            assert key.reveal() == expected, f"after switching to {mode}"


def test_unknown_workspace_is_not_found(worker, security):
    with pytest.raises(NotFoundError, match="unknown"):
        worker.decrypt("ws-never-seen", "openai")


def test_app_cannot_write_platform_keys(app, security):
    with pytest.raises(PermissionDeniedError, match="security role"):
        app.add_key("platform", "openai", _key())


def test_secret_server_refuses_platform_wrap_for_app(deployment, app):
    from splitkey.context import Context

    context = Context(deployment="splitkey.test", workspace="platform", provider="openai", record_id=secrets.token_hex(16))
    stub = secret_pb2_grpc.SecretServerStub(app._secret.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.WrapShare(
            secret_pb2.WrapShareRequest(request_id=secrets.token_hex(8), context=context.to_proto(), share_b=bytes(32)),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_security_cannot_write_customer_keys(security):
    with pytest.raises(PermissionDeniedError):
        security.add_key("ws-customer", "openai", _key())


def test_app_cannot_set_platform_mode_row(app):
    from splitkey.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="platform"):
        app.set_mode("platform", "byok")


def test_one_active_key_per_provider(app, security):
    app.set_mode("ws-one", "byok")
    first = app.add_key("ws-one", "openai", _key())
    second = app.add_key("ws-one", "openai", _key())
    statuses = {info.record_id: info.status for info in app.list_keys("ws-one")}
    assert statuses[first.record_id] == "replaced"
    assert statuses[second.record_id] == "active"
    assert list(statuses.values()).count("active") == 1


def test_remove_key(app, worker, security):
    app.set_mode("ws-remove", "byok")
    added = app.add_key("ws-remove", "openai", _key())
    assert app.remove_key("ws-remove", "openai") == added.record_id
    with pytest.raises(PreconditionError):
        worker.decrypt("ws-remove", "openai")
    with pytest.raises(NotFoundError):
        app.remove_key("ws-remove", "openai")


def test_listing_metadata(app, worker, security):
    own = _key()
    app.set_mode("ws-meta", "byok")
    app.add_key("ws-meta", "openai", own)
    (before,) = app.list_keys("ws-meta")
    assert before.last_used_at_ms == 0
    worker.decrypt("ws-meta", "openai")
    (after,) = app.list_keys("ws-meta")
    assert after.key_hint == f"{own[:4]}…{own[-4:]}"
    assert after.status == "active"
    assert after.last_used_at_ms >= before.created_at_ms
    assert len(after.fingerprint) == 16
    import hashlib

    assert after.fingerprint not in hashlib.sha256(own.encode()).hexdigest()


def test_same_key_same_fingerprint(app, security):
    shared = _key()
    app.set_mode("ws-fp-1", "byok")
    app.set_mode("ws-fp-2", "byok")
    app.add_key("ws-fp-1", "openai", shared)
    app.add_key("ws-fp-2", "openai", shared)
    app.add_key("ws-fp-2", "anthropic", _key("sk-ant-api03-TESTONLY-"))
    (one,) = app.list_keys("ws-fp-1")
    two = {info.provider: info for info in app.list_keys("ws-fp-2")}
    assert one.fingerprint == two["openai"].fingerprint
    assert one.fingerprint != two["anthropic"].fingerprint


def _wait_for_tombstone(deployment, record_id: str, timeout_s: float = 15.0) -> None:
    database = deployment.root / "secret" / "data" / "secret.sqlite3"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        connection = sqlite3.connect(database)
        found = connection.execute("SELECT 1 FROM tombstones WHERE record_id = ?", (record_id,)).fetchone()
        connection.close()
        if found:
            return
        time.sleep(0.2)
    raise AssertionError(f"record {record_id} was not tombstoned on the secret server within {timeout_s} s")


@pytest.mark.parametrize("retire", ["replace", "remove"])
def test_restored_old_row_cannot_decrypt(deployment, app, worker, security, retire):
    """A replaced or removed key put back into the keystore database still cannot be used."""
    workspace = f"ws-restore-{retire}"
    old_key = _key()
    app.set_mode(workspace, "byok")
    old = app.add_key(workspace, "openai", old_key)
    database = deployment.root / "keystore" / "data" / "keystore.sqlite3"
    connection = sqlite3.connect(database)
    saved = connection.execute("SELECT * FROM records WHERE record_id = ?", (old.record_id,)).fetchone()
    connection.close()
    if retire == "replace":
        app.add_key(workspace, "openai", _key())
    else:
        app.remove_key(workspace, "openai")
    _wait_for_tombstone(deployment, old.record_id)

    # Restore the old row as it was in a backup taken before the change.
    connection = sqlite3.connect(database, timeout=10)
    with connection:
        connection.execute("DELETE FROM records WHERE workspace = ? AND provider = 'openai'", (workspace,))
        connection.execute(f"INSERT INTO records VALUES ({', '.join('?' * len(saved))})", saved)
    connection.close()

    with pytest.raises(PreconditionError, match="replaced or removed"):
        worker.decrypt(workspace, "openai")


def test_deleted_mode_row_fails_closed(deployment, app, worker, security):
    """Deleting a byok workspace's mode row must not switch it to the platform's keys."""
    from splitkey.errors import IntegrityError

    own = _key()
    app.set_mode("ws-mode-deleted", "byok")
    app.add_key("ws-mode-deleted", "openai", own)
    database = deployment.root / "keystore" / "data" / "keystore.sqlite3"
    connection = sqlite3.connect(database, timeout=10)
    with connection:
        connection.execute("DELETE FROM workspaces WHERE workspace = 'ws-mode-deleted'")
    connection.close()
    with pytest.raises(IntegrityError):
        worker.decrypt("ws-mode-deleted", "openai")


def test_first_key_creates_platform_mode_row(deployment, app, worker, security):
    app.add_key("ws-first-key", "openai", _key())
    info = app.get_workspace("ws-first-key")
    assert info.mode == 1
    with worker.use_key("ws-first-key", "openai") as key:
        assert key.reveal() == PLATFORM_OPENAI
