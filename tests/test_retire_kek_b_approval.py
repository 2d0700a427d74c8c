"""KEK-B retirement on the secret server: two security approvals stored there, plus the keystore's confirmation."""

from __future__ import annotations

import os
import time

import grpc
import pytest

from splitkey.config import load_keystore_config
from splitkey.pki.deployment import issue_client
from splitkey.tls import client_credentials
from splitkey.v1 import admin_pb2, admin_pb2_grpc
from tests import raw_rpc
from tests import rotation_support as support
from tests.servers import Deployment

SECOND = "spiffe://splitkey.test/security/second"


@pytest.fixture
def rotated(tmp_path):
    """A deployment with two security identities, after a finished KEK-B rotation to version 2."""
    deployment = Deployment.create(tmp_path / "dev").start()
    issue_client(deployment.root, "security", "second")
    support.add_keys(deployment, 2)
    with support.admin(deployment) as admin:
        admin.rotate("kek-b")
        assert support.wait_for_job(admin, "kek-b").state == "done"
    yield deployment
    deployment.stop()


def _as_keystore(deployment) -> tuple[grpc.Channel, admin_pb2_grpc.SecretAdminStub]:
    """A SecretAdmin stub under the keystore's own identity, as a compromised keystore host would hold it."""
    config = load_keystore_config(deployment.root / "keystore.toml")
    credentials, _info = client_credentials(config.secret_server_tls)
    channel = grpc.secure_channel(config.secret_server_address, credentials)
    return channel, admin_pb2_grpc.SecretAdminStub(channel)


def _retire_as_keystore(deployment, version: int):
    channel, stub = _as_keystore(deployment)
    try:
        return stub.RetireKekVersion(
            admin_pb2.RetireKekVersionRequest(request_id=os.urandom(8).hex(), kind="kek-b", version=version),
            timeout=10,
        )
    finally:
        channel.close()


def _kek_b_states(deployment) -> dict[int, str]:
    with support.admin(deployment) as admin:
        return {item.version: item.state for item in admin.versions("kek-b").versions}


def _secret_log(deployment) -> str:
    return (deployment.root / "secret" / "server.log").read_text()


def test_keystore_alone_cannot_retire(rotated):
    with pytest.raises(grpc.RpcError) as refused:
        _retire_as_keystore(rotated, 1)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the approval of 2 security identities" in refused.value.details()
    assert "has 0" in refused.value.details()
    assert _kek_b_states(rotated) == {1: "added", 2: "active"}


def test_one_security_approval_not_enough(rotated):
    with support.admin(rotated) as first:
        assert first.approve_kek_b_retirement(1).state == "pending-approval"
        assert first.approve_kek_b_retirement(1).state == "pending-approval", "the same identity counts once"

    with pytest.raises(grpc.RpcError) as refused:
        _retire_as_keystore(rotated, 1)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has 1 (approved by spiffe://splitkey.test/security/dev)" in refused.value.details()
    assert _kek_b_states(rotated) == {1: "added", 2: "active"}


def test_forged_approval_row_ignored(rotated):
    with support.admin(rotated) as first:
        assert first.approve_kek_b_retirement(1).state == "pending-approval"
    # A second approval written into the secret server's database by hand, with a made-up MAC.
    connection = raw_rpc.open_database(rotated.root / "secret" / "data" / "secret.sqlite3")
    try:
        connection.execute(
            "INSERT INTO retire_approvals (version, identity, approved_at_ms, mac_version, mac) VALUES (?, ?, ?, ?, ?)",
            (1, SECOND, int(time.time() * 1000), 2, "00" * 16),
        )
    finally:
        connection.close()

    with pytest.raises(grpc.RpcError) as refused:
        _retire_as_keystore(rotated, 1)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _kek_b_states(rotated) == {1: "added", 2: "active"}
    assert f"approval to retire KEK-B version 1 by {SECOND} failed its MAC check" in _secret_log(rotated)


def test_two_security_identities_retire(rotated):
    with support.admin(rotated) as first, support.admin(rotated, "second") as second:
        assert first.retire("kek-b", 1).state == "pending-approval"
        assert _kek_b_states(rotated) == {1: "added", 2: "active"}
        approved = second.retire("kek-b", 1)
    assert approved.state == "retired"
    assert approved.approved_by == SECOND
    assert _kek_b_states(rotated) == {1: "retired", 2: "active"}
    # A second confirmation of a retired version changes nothing.
    assert _retire_as_keystore(rotated, 1).state == "retired"
