"""Secret-server tombstones carry a KEK-B MAC: a deleted or edited row cannot revive a replaced key."""

from __future__ import annotations

import time

import pytest

from keystore_server.backup import backup_database, restore_database
from splitkey.errors import IntegrityError, PreconditionError
from splitkey.pki.deployment import issue_client
from tests import raw_rpc
from tests import rotation_support as support
from tests.servers import Deployment

OLD_KEY = "sk-proj-TESTONLY-tombstone-old-0001abcd"
NEW_KEY = "sk-proj-TESTONLY-tombstone-new-0002abcd"


def _secret_db(deployment):
    return deployment.root / "secret" / "data" / "secret.sqlite3"


def _execute(deployment, sql: str, parameters: tuple = ()) -> None:
    connection = raw_rpc.open_database(_secret_db(deployment))
    try:
        connection.execute(sql, parameters)
    finally:
        connection.close()


def _wait_for_tombstone(deployment, record_id: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        connection = raw_rpc.open_database(_secret_db(deployment))
        try:
            found = connection.execute("SELECT 1 FROM tombstones WHERE record_id = ?", (record_id,)).fetchone()
        finally:
            connection.close()
        if found is not None:
            return
        assert time.monotonic() < deadline, f"tombstone of record {record_id} never reached the secret server"
        time.sleep(0.1)


@pytest.fixture
def restored(tmp_path):
    """A replaced key whose old record is active again, because the keystore was restored from an older backup."""
    deployment = Deployment.create(tmp_path / "dev").start()
    issue_client(deployment.root, "security", "second")
    with deployment.client("app") as app:
        app.add_key("ws-0000", "openai", OLD_KEY)
    [old_record] = support.rows(deployment)
    backup = tmp_path / "keystore-before-replace.sqlite3"
    backup_database(support.keystore_db(deployment), backup)
    with deployment.client("app") as app:
        app.add_key("ws-0000", "openai", NEW_KEY)
    _wait_for_tombstone(deployment, old_record)

    deployment.keystore.stop()
    restore_database(backup, support.keystore_db(deployment))
    deployment.keystore.start()
    yield deployment, old_record
    deployment.stop()


def test_restored_old_record_refused(restored):
    deployment, old_record = restored
    with deployment.client("worker") as worker:
        with pytest.raises(PreconditionError) as refused:
            worker.decrypt("ws-0000", "openai")
    assert old_record in str(refused.value)


def test_deleted_tombstone_detected(restored):
    deployment, old_record = restored
    _execute(deployment, "DELETE FROM tombstones WHERE record_id = ?", (old_record,))

    with deployment.client("worker") as worker:
        with pytest.raises(IntegrityError):
            worker.decrypt("ws-0000", "openai")
    log = (deployment.root / "secret" / "server.log").read_text()
    assert "tombstones fail their MAC (generation 1, 0 rows)" in log


def test_edited_tombstone_detected(restored):
    deployment, _old_record = restored
    _execute(deployment, "UPDATE tombstones SET reason = 'removed'")

    with deployment.client("worker") as worker:
        with pytest.raises(IntegrityError):
            worker.decrypt("ws-0000", "openai")


def test_tombstones_resigned_on_kek_b_rotation(restored):
    deployment, old_record = restored
    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        first.rotate("kek-b")
        assert support.wait_for_job(first, "kek-b").state == "done"
        assert first.retire("kek-b", 1).state == "pending-approval"
        assert second.retire("kek-b", 1).state == "retired"

    with deployment.client("worker") as worker:
        with pytest.raises(PreconditionError) as refused:
            worker.decrypt("ws-0000", "openai")
    assert old_record in str(refused.value)
