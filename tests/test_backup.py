"""Backup, restore and verify: a backup from before a KEK-B rotation, restored after retirement."""

from __future__ import annotations

import os
import sqlite3

import pytest

from client.cli.main import main as cli_main
from keystore_server import backup
from splitkey.errors import KeyVersionError
from splitkey.pki.deployment import issue_client
from tests import rotation_support as support
from tests.servers import Deployment

KEYS = 5


@pytest.fixture
def deployment(tmp_path):
    running = Deployment.create(tmp_path / "dev").start()
    issue_client(running.root, "security", "second")
    yield running
    running.stop()


def test_restored_backup_reports_unheld_kek_b_version(deployment, tmp_path, capsys):
    keys = support.add_keys(deployment, KEYS)
    saved = tmp_path / "before-rotation.sqlite3"
    # Online: the keystore is running while the backup is taken.
    assert backup.backup_database(support.keystore_db(deployment), saved) == KEYS

    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        first.rotate("kek-b")
        assert support.wait_for_job(first, "kek-b").state == "done"
        assert first.retire("kek-b", 1).state == "pending-approval"
        assert second.retire("kek-b", 1).state == "retired"
        assert first.verify().unreadable_rows == 0

    deployment.keystore.stop()
    assert backup.restore_database(saved, support.keystore_db(deployment)) == KEYS
    deployment.keystore.start()

    with support.admin(deployment) as admin:
        report = admin.verify()
    assert report.rows == KEYS
    assert report.unreadable_rows == KEYS
    kek_b = [item for item in report.versions if item.kind == "kek-b"]
    assert [(item.version, item.state, item.rows) for item in kek_b] == [(1, "retired", KEYS)]
    assert len(kek_b[0].sample_record_ids) == KEYS

    exit_code = cli_main(["verify", "--client-config", str(deployment.client_config("security"))])
    output = capsys.readouterr().out
    assert exit_code == 1
    assert f"{KEYS} rows reference a KEK version that a server no longer holds" in output

    with deployment.client("worker") as worker:
        with pytest.raises(KeyVersionError) as caught:
            worker.decrypt("ws-0000", "openai")
    assert "key version 1 is retired" in str(caught.value)
    assert keys


def test_interrupted_restore_keeps_previous_database(deployment, tmp_path, monkeypatch):
    support.add_keys(deployment, KEYS)
    saved = tmp_path / "small.sqlite3"
    backup.backup_database(support.keystore_db(deployment), saved)
    support.add_keys(deployment, KEYS + 3, generation=1)
    deployment.keystore.stop()
    database = support.keystore_db(deployment)
    expected = support.rows(deployment)

    def interrupted(source, target):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(backup.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backup.restore_database(saved, database)
    monkeypatch.undo()

    assert support.rows(deployment) == expected
    leftovers = [name for name in os.listdir(database.parent) if name.endswith(".tmp")]
    assert leftovers == []
    deployment.keystore.start()
    with deployment.client("worker") as worker:
        assert worker.decrypt("ws-0007", "openai").reveal() == support.api_key(7, generation=1)


def test_restore_rejects_non_keystore_file(deployment, tmp_path):
    bogus = tmp_path / "bogus.sqlite3"
    connection = sqlite3.connect(bogus)
    connection.execute("CREATE TABLE other (x)")
    connection.commit()
    connection.close()
    deployment.keystore.stop()
    from splitkey.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        backup.restore_database(bogus, support.keystore_db(deployment))
    assert "not a keystore database" in str(caught.value)
    deployment.keystore.start()


def test_backup_refuses_to_overwrite(deployment, tmp_path):
    target = tmp_path / "exists.sqlite3"
    target.write_bytes(b"keep me")
    from splitkey.errors import ConfigError

    with pytest.raises(ConfigError):
        backup.backup_database(support.keystore_db(deployment), target)
    assert target.read_bytes() == b"keep me"
