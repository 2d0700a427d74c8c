"""Retirement approvals: a proposal row written or edited in the database does not count, and audit names both steps."""

from __future__ import annotations

import time

import pytest

from splitkey.pki.deployment import issue_client
from tests import raw_rpc
from tests import rotation_support as support
from tests.audit_server_support import server_entries
from tests.servers import Deployment

FIRST = "spiffe://splitkey.test/security/dev"
SECOND = "spiffe://splitkey.test/security/second"


@pytest.fixture
def rotated(tmp_path):
    """A deployment with two security identities, after a finished KEK-A rotation to version 2."""
    deployment = Deployment.create(tmp_path / "dev").start()
    issue_client(deployment.root, "security", "second")
    support.add_keys(deployment, 3)
    with support.admin(deployment) as admin:
        admin.rotate("kek-a")
        assert support.wait_for_job(admin, "kek-a").state == "done"
    yield deployment
    deployment.stop()


def _execute(deployment, sql: str, parameters: tuple = ()) -> None:
    connection = raw_rpc.open_database(support.keystore_db(deployment))
    try:
        connection.execute(sql, parameters)
    finally:
        connection.close()


def _kek_a_states(deployment) -> dict[int, str]:
    with support.admin(deployment) as admin:
        return {item.version: item.state for item in admin.versions("kek-a").versions}


def _server_log(deployment) -> str:
    return (deployment.root / "keystore" / "server.log").read_text()


def test_inserted_approval_row_ignored(rotated):
    # As if SECOND had proposed: a row inserted by hand, with no MAC.
    _execute(rotated, "INSERT INTO retire_approvals (kind, version, proposed_by, proposed_at_ms) VALUES (?, ?, ?, ?)",
             ("kek-a", 1, SECOND, int(time.time() * 1000)))

    with support.admin(rotated) as first:
        reply = first.retire("kek-a", 1)
    assert reply.state == "pending-approval"
    assert reply.proposed_by == FIRST
    assert _kek_a_states(rotated) == {1: "added", 2: "active"}
    assert f"retirement proposal of kek-a version 1 by {SECOND} has no usable MAC" in _server_log(rotated)


def test_edited_proposer_fails_mac(rotated):
    with support.admin(rotated) as first:
        assert first.retire("kek-a", 1).state == "pending-approval"
    # Keep the valid MAC of FIRST's row but claim SECOND proposed it, then let FIRST approve.
    _execute(rotated, "UPDATE retire_approvals SET proposed_by = ? WHERE kind = 'kek-a' AND version = 1", (SECOND,))

    with support.admin(rotated) as first:
        reply = first.retire("kek-a", 1)
    assert reply.state == "pending-approval"
    assert reply.approved_by == ""
    assert _kek_a_states(rotated) == {1: "added", 2: "active"}
    assert f"retirement proposal of kek-a version 1 by {SECOND} failed its MAC check" in _server_log(rotated)

    # The row FIRST just wrote again is valid, so SECOND can still approve it.
    with support.admin(rotated, "second") as second:
        approved = second.retire("kek-a", 1)
    assert approved.state == "retired"
    assert approved.proposed_by == FIRST


def test_retire_audit_names_proposal_and_approval(rotated):
    with support.admin(rotated) as first, support.admin(rotated, "second") as second:
        assert first.retire("kek-a", 1).state == "pending-approval"
        assert second.retire("kek-a", 1).state == "retired"

    entries = server_entries(rotated, "keystore", action="RetireKekVersion")
    assert [entry.actor for entry in entries] == [FIRST, SECOND]
    proposal, approval = entries
    assert proposal.outcome == "allowed"
    assert proposal.reason.startswith("proposal to retire kek-a version 1 by " + FIRST)
    assert approval.outcome == "allowed"
    assert approval.reason.startswith("approval to retire kek-a version 1, proposed by " + FIRST)
    assert "the version is retired" in approval.reason


def test_old_approvals_table_gains_mac_columns(rotated):
    rotated.keystore.stop()
    # Recreate the table without the MAC columns, as older databases have it, with one pending proposal.
    _execute(rotated, "DROP TABLE retire_approvals")
    _execute(rotated, "CREATE TABLE retire_approvals (kind TEXT NOT NULL, version INTEGER NOT NULL, "
                      "proposed_by TEXT NOT NULL, proposed_at_ms INTEGER NOT NULL, PRIMARY KEY (kind, version))")
    _execute(rotated, "INSERT INTO retire_approvals VALUES (?, ?, ?, ?)",
             ("kek-a", 1, SECOND, int(time.time() * 1000)))
    rotated.keystore.start()

    with support.admin(rotated) as first, support.admin(rotated, "second") as second:
        assert first.retire("kek-a", 1).state == "pending-approval"
        assert second.retire("kek-a", 1).state == "retired"
    assert _kek_a_states(rotated) == {1: "retired", 2: "active"}
    assert f"retirement proposal of kek-a version 1 by {SECOND} has no usable MAC" in _server_log(rotated)
