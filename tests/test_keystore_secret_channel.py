"""The keystore's channel to the secret server picks up a renewed client certificate without a restart."""

from __future__ import annotations

import datetime
import time

import pytest

from splitkey.errors import SplitkeyError
from splitkey.pki.certs import issue_leaf, write_certified_key
from tests import raw_rpc
from tests import rotation_support as support
from tests.pki_helpers import deployment_ca, edit_toml, spiffe
from tests.servers import Deployment

KEYSTORE_IDENTITY = spiffe("keystore", "main")
# Lifetime of the first keystore certificate: long enough to start both servers, short enough to wait out.
SHORT_LIFETIME_S = 8


def _issue_to_secret(deployment, *, seconds: float):
    """Write a keystore client certificate for the secret server that expires in `seconds`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    certified = issue_leaf(
        deployment_ca(deployment.root, "secret"), uris=[KEYSTORE_IDENTITY],
        not_before=now - datetime.timedelta(minutes=5), not_after=now + datetime.timedelta(seconds=seconds),
    )
    write_certified_key(deployment.root / "keystore/to-secret.pem", deployment.root / "keystore/to-secret.key",
                        certified)
    return certified


@pytest.fixture
def renewed(tmp_path):
    """Both servers running after the keystore's certificate for the secret server was renewed and the old one expired.

    The secret server is restarted after the expiry, so the keystore must open
    new connections, and a handshake with the expired certificate fails.
    """
    deployment = Deployment.create(tmp_path / "dev")
    edit_toml(deployment.root / "keystore.toml", "audit", witness_interval_s=0.5)
    short = _issue_to_secret(deployment, seconds=SHORT_LIFETIME_S)
    deployment.start()
    keys = support.add_keys(deployment, 1)
    _issue_to_secret(deployment, seconds=30 * 24 * 3600)
    wait_s = (short.certificate.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    time.sleep(max(wait_s, 0) + 1)
    log_offset = len(_keystore_log(deployment))
    deployment.secret.stop()
    deployment.secret.start()
    yield deployment, keys, log_offset
    deployment.stop()


def _keystore_log(deployment) -> str:
    return (deployment.root / "keystore" / "server.log").read_text()


def _eventually(action, timeout_s: float = 30.0):
    """Call `action` until it returns without a SplitkeyError; fail with the last error after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except SplitkeyError as error:
            if time.monotonic() >= deadline:
                raise AssertionError(f"still failing after {timeout_s} s: {type(error).__name__}: {error}") from None
            time.sleep(0.5)


def test_verify_uses_renewed_certificate(renewed):
    deployment, _keys, _offset = renewed
    with support.admin(deployment) as admin:
        report = _eventually(admin.verify)
    assert report.rows == 1
    assert report.unreadable_rows == 0


def test_tombstone_delivered_with_renewed_certificate(renewed):
    deployment, _keys, _offset = renewed
    with deployment.client("app") as app:
        app.remove_key("ws-0000", "openai")
    removed = next(iter(support.rows(deployment)))
    deadline = time.monotonic() + 30
    while True:
        connection = raw_rpc.open_database(deployment.root / "secret" / "data" / "secret.sqlite3")
        try:
            found = connection.execute("SELECT reason FROM tombstones WHERE record_id = ?", (removed,)).fetchone()
        finally:
            connection.close()
        if found is not None:
            break
        assert time.monotonic() < deadline, "the tombstone never reached the secret server"
        time.sleep(0.2)
    assert found["reason"] == "removed"


def test_witness_exchange_resumes_with_renewed_certificate(renewed):
    """After the restart, the secret server witnesses a new keystore head again.

    Any new connection needs the renewed certificate, because the first one has
    expired. Waiting for an entry instead of a log line also covers the case
    where no exchange happened to fail while the secret server restarted.
    """
    from splitkey.audit.entry import WITNESS_ACTION
    from tests.audit_server_support import audit_path, read_entries

    deployment, keys, _offset = renewed
    since_ms = int(time.time() * 1000)
    # The keystore pushes its head only when it moved, so make it move.
    workspace, key = next(iter(keys.items()))
    with deployment.client("worker") as worker:
        assert _eventually(lambda: worker.decrypt(workspace, "openai")).reveal() == key
    deadline = time.monotonic() + 30
    while not [
        entry for entry in read_entries(audit_path(deployment, "secret"))
        if entry.action == WITNESS_ACTION and entry.time_ms >= since_ms
    ]:
        assert time.monotonic() < deadline, "the secret server witnessed no keystore head after the restart"
        time.sleep(0.2)
