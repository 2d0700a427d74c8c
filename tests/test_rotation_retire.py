"""Retiring a KEK version: refused while rows use it (naming them), two security identities, distinct error after."""

from __future__ import annotations

import sqlite3

import pytest

from splitkey.errors import KeyVersionError, PreconditionError
from splitkey.pki.deployment import issue_client
from tests import rotation_support as support
from tests.servers import Deployment


@pytest.fixture
def three_keys(tmp_path):
    deployment = Deployment.create(tmp_path / "dev").start()
    issue_client(deployment.root, "security", "second")
    keys = support.add_keys(deployment, 3)
    yield deployment, keys
    deployment.stop()


def _restore_row(deployment, row) -> None:
    """Put a saved copy of a row back, as an old backup or a careless restore would."""
    connection = sqlite3.connect(support.keystore_db(deployment), timeout=10)
    try:
        names = list(row.keys())
        connection.execute(
            f"UPDATE records SET {', '.join(f'{name} = ?' for name in names)} WHERE record_id = ?",
            [row[name] for name in names] + [row["record_id"]],
        )
        connection.commit()
    finally:
        connection.close()


def test_retire_refused_while_a_row_uses_version(three_keys):
    deployment, keys = three_keys
    saved = {row["workspace"]: row for row in support.rows(deployment).values()}
    with support.admin(deployment) as admin:
        admin.rotate("kek-a")
        assert support.wait_for_job(admin, "kek-a").state == "done"
        # ws-0002 goes back to its v1 copy, so only two of the three rows are re-wrapped.
        _restore_row(deployment, saved["ws-0002"])
        lagging = saved["ws-0002"]["record_id"]
        before = support.rows(deployment)

        with pytest.raises(PreconditionError) as refused:
            admin.retire("kek-a", 1)
        message = str(refused.value)
        assert "1 row" in message
        assert lagging in message
        assert "ws-0002" in message
        for other in ("ws-0000", "ws-0001"):
            assert saved[other]["record_id"] not in message
        assert support.rows(deployment) == before
        assert {item.version: item.state for item in admin.versions("kek-a").versions} == {1: "added", 2: "active"}


def test_retire_needs_second_security_identity(three_keys):
    deployment, keys = three_keys
    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        first.rotate("kek-a")
        assert support.wait_for_job(first, "kek-a").state == "done"
        assert first.retire("kek-a", 1).state == "pending-approval"
        assert first.retire("kek-a", 1).state == "pending-approval", "the proposer cannot approve alone"
        assert first.versions("kek-a").versions[0].state == "added"
        approved = second.retire("kek-a", 1)
        assert approved.state == "retired"
        assert approved.proposed_by.endswith("/security/dev")
        assert approved.approved_by.endswith("/security/second")
        assert {item.version: item.state for item in first.versions("kek-a").versions} == {1: "retired", 2: "active"}


def test_retired_version_gives_distinct_error(three_keys):
    deployment, keys = three_keys
    saved = {row["workspace"]: row for row in support.rows(deployment).values()}
    with support.admin(deployment) as first, support.admin(deployment, "second") as second:
        first.rotate("kek-a")
        assert support.wait_for_job(first, "kek-a").state == "done"
        _restore_row(deployment, saved["ws-0002"])
        with pytest.raises(PreconditionError):
            first.retire("kek-a", 1)
        # Re-wrapping the lagging row lets the retirement through.
        first.start_rewrap("kek-a")
        assert support.wait_for_job(first, "kek-a").state == "done"
        assert first.retire("kek-a", 1).state == "pending-approval"
        assert second.retire("kek-a", 1).state == "retired"

    with deployment.client("worker") as worker:
        assert worker.decrypt("ws-0002", "openai").reveal() == keys["ws-0002"]
        _restore_row(deployment, saved["ws-0002"])
        with pytest.raises(KeyVersionError) as caught:
            worker.decrypt("ws-0002", "openai")
        assert "key version 1 is retired" in str(caught.value)
        assert worker.decrypt("ws-0001", "openai").reveal() == keys["ws-0001"]


def test_active_version_cannot_be_retired(three_keys):
    deployment, _keys = three_keys
    with support.admin(deployment) as admin:
        with pytest.raises(PreconditionError) as refused:
            admin.retire("kek-b", 1)
    assert "active" in str(refused.value)
