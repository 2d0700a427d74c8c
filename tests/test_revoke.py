"""Revoke and deny on both servers: effective on the next request, reason recorded, not undone by one database."""

from __future__ import annotations

import sqlite3

import pytest

from splitkey.errors import IntegrityError, PermissionDeniedError
from splitkey.pki.deployment import issue_client
from tests import rotation_support as support
from tests.servers import Deployment

WORKER = "spiffe://splitkey.test/worker/dev"


@pytest.fixture
def deployment(tmp_path):
    running = Deployment.create(tmp_path / "dev").start()
    issue_client(running.root, "worker", "second")
    yield running
    running.stop()


def _secret_db(deployment):
    return deployment.root / "secret" / "data" / "secret.sqlite3"


def _execute(path, *statements) -> None:
    connection = sqlite3.connect(path, timeout=10)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def _second_worker(deployment):
    from client import KeyClient

    return KeyClient.from_config(deployment.root / "client-worker-second.toml", harden=False)


def test_revoke_record_takes_effect_and_lifts(deployment):
    keys = support.add_keys(deployment, 2)
    record_id = next(row["record_id"] for row in support.rows(deployment).values() if row["workspace"] == "ws-0000")
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        assert worker.decrypt("ws-0000", "openai").reveal() == keys["ws-0000"]
        result = admin.set_access("record", record_id, disabled=True, reason="leaked in a support ticket")
        assert result.errors == {}
        with pytest.raises(PermissionDeniedError) as caught:
            worker.decrypt("ws-0000", "openai")
        assert "leaked in a support ticket" in str(caught.value)
        assert worker.decrypt("ws-0001", "openai").reveal() == keys["ws-0001"]

        rules = admin.list_access()
        for server in ("keystore", "secret"):
            [rule] = rules[server]
            assert rule.subject == record_id
            assert rule.reason == "leaked in a support ticket"
            assert rule.actor.endswith("/security/dev")

        admin.set_access("record", record_id, disabled=False, reason="")
        assert worker.decrypt("ws-0000", "openai").reveal() == keys["ws-0000"]


def test_revoke_workspace(deployment):
    keys = support.add_keys(deployment, 2)
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        admin.set_access("workspace", "ws-0001", disabled=True, reason="customer offboarded")
        with pytest.raises(PermissionDeniedError):
            worker.decrypt("ws-0001", "openai")
        assert worker.decrypt("ws-0000", "openai").reveal() == keys["ws-0000"]


def test_deny_worker_identity(deployment):
    keys = support.add_keys(deployment, 1)
    with support.admin(deployment) as admin, deployment.client("worker") as worker, _second_worker(deployment) as other:
        admin.set_access("identity", WORKER, disabled=True, reason="host compromised")
        with pytest.raises(PermissionDeniedError):
            worker.decrypt("ws-0000", "openai")
        assert other.decrypt("ws-0000", "openai").reveal() == keys["ws-0000"]


def test_keystore_rule_deleted_in_database_is_detected(deployment):
    support.add_keys(deployment, 1)
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        admin.set_access("workspace", "ws-0000", disabled=True, reason="incident 7")
        _execute(support.keystore_db(deployment), "DELETE FROM access_rules")
        with pytest.raises(IntegrityError):
            worker.decrypt("ws-0000", "openai")


def test_wiped_keystore_rules_still_denied_by_secret_server(deployment):
    support.add_keys(deployment, 1)
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        admin.set_access("workspace", "ws-0000", disabled=True, reason="incident 8")
        _execute(support.keystore_db(deployment), "DELETE FROM access_rules", "DELETE FROM access_head")
        with pytest.raises(PermissionDeniedError) as caught:
            worker.decrypt("ws-0000", "openai")
        assert "incident 8" in str(caught.value)


def test_wiped_keystore_rules_platform_mode_still_denied(deployment):
    """A workspace served by a platform key is revoked on the secret server too, via the signed grant."""
    with deployment.client("security") as security:
        security.add_key("platform", "openai", "sk-proj-TESTONLY-platformkey1234")
    with deployment.client("app", byok_on_add=False) as app:
        app.set_mode("ws-platform-revoked", "platform")
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        assert worker.decrypt("ws-platform-revoked", "openai").resolution == "platform"
        admin.set_access("workspace", "ws-platform-revoked", disabled=True, reason="incident 9")
        _execute(support.keystore_db(deployment), "DELETE FROM access_rules", "DELETE FROM access_head")
        with pytest.raises(PermissionDeniedError) as caught:
            worker.decrypt("ws-platform-revoked", "openai")
        assert "incident 9" in str(caught.value)


def test_wiped_secret_rules_still_denied_by_keystore(deployment):
    support.add_keys(deployment, 1)
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        admin.set_access("identity", WORKER, disabled=True, reason="incident 9")
        _execute(_secret_db(deployment), "DELETE FROM access_rules", "DELETE FROM access_head")
        with pytest.raises(PermissionDeniedError):
            worker.decrypt("ws-0000", "openai")


def test_edited_secret_rule_is_detected(deployment):
    support.add_keys(deployment, 1)
    with support.admin(deployment) as admin, deployment.client("worker") as worker:
        admin.set_access("workspace", "ws-0000", disabled=True, reason="incident 10")
        _execute(_secret_db(deployment), "UPDATE access_rules SET disabled = 0")
        _execute(support.keystore_db(deployment), "DELETE FROM access_rules", "DELETE FROM access_head")
        with pytest.raises(IntegrityError):
            worker.decrypt("ws-0000", "openai")


def test_revoke_requires_reason_and_valid_subject(deployment):
    with support.admin(deployment) as admin:
        result = admin.set_access("record", "not-a-record", disabled=True, reason="x")
        assert set(result.errors) == {"keystore", "secret"}
        assert "record id" in result.errors["keystore"]
        result = admin.set_access("workspace", "ws-0000", disabled=True, reason="")
        assert "reason is missing" in result.errors["keystore"]


def test_worker_cannot_revoke(deployment):
    from client.admin_client import AdminClient

    with AdminClient.from_config(deployment.client_config("worker")) as worker_admin:
        result = worker_admin.set_access("workspace", "ws-0000", disabled=True, reason="x")
    assert set(result.errors) == {"keystore", "secret"}
