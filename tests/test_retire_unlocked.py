"""Retirement runs its keyring change outside the keystore's write transaction, and survives a crash in between."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import grpc
import pytest

from splitkey.kek import load_keyring
from splitkey.pki.deployment import issue_client
from splitkey.v1 import admin_pb2, admin_pb2_grpc
from tests import raw_rpc
from tests import rotation_support as support
from tests.pki_helpers import edit_toml
from tests.servers import Deployment

# Long enough that the secret server waits for the test's lock instead of failing the call.
SECRET_BUSY_TIMEOUT_S = 60.0


@pytest.fixture
def approved(tmp_path):
    """KEK-B rotated to version 2, and both security identities' approvals to retire version 1 sent.

    Only the keystore's approval by the second identity is left, so the next
    keystore call retires the version.
    """
    deployment = Deployment.create(tmp_path / "dev")
    edit_toml(deployment.root / "secret.toml", "limits", sqlite_busy_timeout_s=SECRET_BUSY_TIMEOUT_S)
    deployment.start()
    issue_client(deployment.root, "security", "second")
    support.add_keys(deployment, 2)
    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        first.rotate("kek-b")
        assert support.wait_for_job(first, "kek-b").state == "done"
        assert first.retire("kek-b", 1).state == "pending-approval"
        assert second.approve_kek_b_retirement(1).state == "approved"
    yield deployment
    deployment.stop()


def _secret_kek_b_states(deployment) -> dict[int, str]:
    """The secret server's keyring file as it is on disk now."""
    root = deployment.root
    keyring = load_keyring(root / "secret/kek-b.keyring.json", (root / "secret/kek-b.passphrase").read_bytes())
    return keyring.states()


def _hold_secret_write_lock(deployment) -> sqlite3.Connection:
    """Take the secret server's database write lock, so its retirement stops after the keyring change."""
    connection = raw_rpc.open_database(deployment.root / "secret" / "data" / "secret.sqlite3")
    connection.execute("BEGIN IMMEDIATE")
    return connection


def _wait_for_secret_retirement(deployment, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _secret_kek_b_states(deployment).get(1) != "retired":
        assert time.monotonic() < deadline, "the secret server never retired KEK-B version 1"
        time.sleep(0.05)


def _keystore_mark(deployment) -> str | None:
    connection = raw_rpc.open_database(support.keystore_db(deployment))
    try:
        found = connection.execute(
            "SELECT state FROM retired_kek_versions WHERE kind = 'kek-b' AND version = 1"
        ).fetchone()
    finally:
        connection.close()
    return found["state"] if found else None


def _retire_in_thread(deployment, outcome: dict) -> threading.Thread:
    """Send the second identity's KeystoreAdmin.RetireKekVersion once, with no retry and a long deadline.

    The secret server already holds both approvals, and AdminClient.retire
    would first write one more there, which the test's lock would block.
    """
    def run() -> None:
        channel = raw_rpc.raw_channel(deployment, "security-second", "keystore")
        try:
            outcome["reply"] = admin_pb2_grpc.KeystoreAdminStub(channel).RetireKekVersion(
                admin_pb2.RetireKekVersionRequest(request_id=os.urandom(8).hex(), kind="kek-b", version=1),
                timeout=90,
            )
        except grpc.RpcError as error:
            outcome["error"] = error
        finally:
            channel.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_keystore_database_writable_during_remote_retire(approved):
    outcome: dict = {}
    lock = _hold_secret_write_lock(approved)
    try:
        thread = _retire_in_thread(approved, outcome)
        # The secret server has deleted version 1 and now waits for its database,
        # so the keystore is inside its call to the secret server.
        _wait_for_secret_retirement(approved)
        assert "reply" not in outcome
        assert "error" not in outcome

        probe = sqlite3.connect(support.keystore_db(approved), timeout=2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        finally:
            probe.close()
        assert _keystore_mark(approved) == "retiring"
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["reply"].state == "retired"
    assert _keystore_mark(approved) == "retired"


def test_retiring_mark_finished_after_keystore_crash(approved):
    outcome: dict = {}
    lock = _hold_secret_write_lock(approved)
    try:
        thread = _retire_in_thread(approved, outcome)
        _wait_for_secret_retirement(approved)
        approved.keystore.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    thread.join(60)
    assert "error" in outcome, "the keystore was killed before it answered"
    assert _keystore_mark(approved) == "retiring"

    approved.keystore.start()
    deadline = time.monotonic() + 60
    while _keystore_mark(approved) != "retired":
        assert time.monotonic() < deadline, "the restarted keystore did not finish the retirement"
        time.sleep(0.1)
    with support.admin(approved) as admin:
        states = {item.version: item.state for item in admin.versions("kek-b").versions}
        assert states == {1: "retired", 2: "active"}
        assert admin.verify().unreadable_rows == 0
    assert "finished the retirement of kek-b version 1 left unfinished" in (
        approved.root / "keystore" / "server.log").read_text()
