"""Edited keystore rows and a lying keystore: the worker gets one uniform IntegrityError and no key.

The test process edits the keystore's SQLite file while the server runs. Most
edits are caught by the row MAC in the keystore. The "re-signed" cases also
recompute the row MAC with KEK-A, as an attacker holding KEK-A could. Then the
next layer must catch the edit: the keystore's unwrap of wrap_a, the secret
server's unwrap of wrap_b, or the client's AES-GCM check of the ciphertext.
"""

from __future__ import annotations

import re
import secrets
from concurrent import futures

import grpc
import pytest

from keystore_server.rows import RecordRow, RowMac
from splitkey.config import load_keystore_config
from splitkey.errors import IntegrityError, KeyVersionError, NotFoundError, PreconditionError
from splitkey.kek import load_keyring
from splitkey.v1 import keystore_pb2, keystore_pb2_grpc
from tests.raw_rpc import TRUST_DOMAIN, keystore_database, open_database, raw_channel, write_client_config

_COLUMNS = (
    "record_id", "workspace", "provider", "status", "ciphertext", "wrap_a", "wrap_b",
    "kek_a_version", "kek_b_version", "key_hint", "created_at_ms", "row_version", "mac",
)


def _new_key(provider: str = "openai") -> str:
    """Return a made-up key in the provider's format; no provider is ever called with it."""
    if provider == "google":
        return "AIza" + secrets.token_urlsafe(30)[:35]
    if provider == "anthropic":
        return f"sk-ant-api03-TESTONLY-{secrets.token_hex(16)}"
    if provider == "openrouter":
        return f"sk-or-v1-{secrets.token_hex(32)}"
    return f"sk-proj-TESTONLY-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def database(deployment):
    connection = open_database(keystore_database(deployment))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def row_mac(deployment):
    """The keystore's row MAC, rebuilt in the test process from the development KEK-A keyring."""
    config = load_keystore_config(deployment.root / "keystore.toml")
    keyring = load_keyring(config.kek_a.keyring, config.kek_a.passphrase.read())
    return RowMac(keyring, TRUST_DOMAIN)


def _stored_row(database, record_id: str) -> dict:
    found = database.execute(f"SELECT {', '.join(_COLUMNS)} FROM records WHERE record_id = ?", (record_id,)).fetchone()
    assert found is not None, f"record {record_id} is not in the keystore database"
    return {name: found[name] for name in _COLUMNS}


def _write_row(database, record_id: str, values: dict) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    cursor = database.execute(
        f"UPDATE records SET {assignments} WHERE record_id = ?", (*values.values(), record_id)
    )
    assert cursor.rowcount == 1


def _resign(database, row_mac: RowMac, record_id: str) -> None:
    row = _stored_row(database, record_id)
    fields = {name: row[name] for name in _COLUMNS}
    for name in ("ciphertext", "wrap_a", "wrap_b", "mac"):
        fields[name] = bytes(fields[name])
    signed = row_mac.sign(RecordRow(**fields))
    _write_row(database, record_id, {"mac": signed.mac})


def _flip(value):
    """Flip the lowest bit of one byte (a middle byte of a blob, the first of a text, the low byte of an int)."""
    if isinstance(value, int):
        return value ^ 1
    if isinstance(value, str):
        return chr(ord(value[0]) ^ 1) + value[1:]
    data = bytearray(value)
    data[len(data) // 2] ^= 1
    return bytes(data)


def _assert_integrity_failure(worker, workspace: str, model: str, key: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        worker.decrypt(workspace, model)
    error = caught.value
    assert type(error) is IntegrityError
    assert str(error) == IntegrityError.MESSAGE
    assert error.__cause__ is None
    assert key not in repr(error)


def _add(app, worker, workspace: str, provider: str = "openai") -> tuple[str, str]:
    key = _new_key(provider)
    added = app.add_key(workspace, provider, key)
    # The untampered row decrypts, so a later failure comes from the edit alone.
    assert worker.decrypt(workspace, provider).reveal() == key
    return added.record_id, key


# -- a blob copied from another workspace's row ------------------------------------------


@pytest.mark.parametrize("resign", [False, True], ids=["row-mac-unchanged", "re-signed"])
@pytest.mark.parametrize("column", ["ciphertext", "wrap_a", "wrap_b"])
def test_blob_moved_between_workspaces(app, worker, database, row_mac, column, resign):
    suffix = f"{column.replace('_', '-')}-{int(resign)}"
    victim_id, victim_key = _add(app, worker, f"moved-to-{suffix}")
    donor_id, donor_key = _add(app, worker, f"moved-from-{suffix}")
    original = _stored_row(database, victim_id)

    _write_row(database, victim_id, {column: _stored_row(database, donor_id)[column]})
    if resign:
        _resign(database, row_mac, victim_id)
    _assert_integrity_failure(worker, f"moved-to-{suffix}", "openai", victim_key)
    assert worker.decrypt(f"moved-from-{suffix}", "openai").reveal() == donor_key

    _write_row(database, victim_id, {name: original[name] for name in (column, "mac")})
    assert worker.decrypt(f"moved-to-{suffix}", "openai").reveal() == victim_key


def test_whole_row_moved_between_workspaces(app, worker, database):
    victim_id, victim_key = _add(app, worker, "whole-row-to")
    donor_id, _donor_key = _add(app, worker, "whole-row-from")
    donor = _stored_row(database, donor_id)

    _write_row(database, victim_id, {name: donor[name] for name in ("ciphertext", "wrap_a", "wrap_b", "key_hint", "mac")})

    _assert_integrity_failure(worker, "whole-row-to", "openai", victim_key)


# -- one flipped byte in one column -----------------------------------------------------

# Columns the keystore finds the row by: after a flip no row matches the
# request, so the worker gets the "no key" error of its byok workspace
# (NotFoundError or PreconditionError) and no bytes either.
_LOOKUP_COLUMNS = ("provider", "status")


@pytest.mark.parametrize("column", _COLUMNS)
def test_flipped_byte_in_column(app, worker, database, column):
    # The workspace ends in "0" so that its flip is "…-1", a valid workspace the worker can ask for.
    workspace = f"flip-{column.replace('_', '-')}-0"
    record_id, key = _add(app, worker, workspace)
    original = _stored_row(database, record_id)

    if column == "workspace":
        flipped = workspace[:-1] + chr(ord(workspace[-1]) ^ 1)
        requested = flipped
        # Without a byok mode row the keystore would serve the platform key and never read the edited row.
        app.set_mode(flipped, "byok")
    else:
        flipped = _flip(original[column])
        requested = workspace
    _write_row(database, record_id, {column: flipped})

    if column in _LOOKUP_COLUMNS:
        with pytest.raises((NotFoundError, PreconditionError)) as caught:
            worker.decrypt(requested, "openai")
        assert key not in str(caught.value)
    elif column == "kek_a_version":
        # The row MAC key is derived from the KEK-A version the row names, so a
        # version this keystore does not hold fails before the MAC check, with
        # the same error a restored row of a retired version gets.
        with pytest.raises(KeyVersionError) as caught:
            worker.decrypt(requested, "openai")
        assert re.search(r"key version \d+ is (not held|retired)", str(caught.value))
        assert key not in str(caught.value)
    else:
        _assert_integrity_failure(worker, requested, "openai", key)

    # Restore by the flipped value when the flip hit the primary key.
    _write_row(database, _flip(record_id) if column == "record_id" else record_id, {column: original[column]})
    assert worker.decrypt(workspace, "openai").reveal() == key


@pytest.mark.parametrize("column", ["ciphertext", "wrap_a", "wrap_b"])
def test_flipped_byte_in_resigned_row(app, worker, database, row_mac, column):
    workspace = f"flip-resigned-{column.replace('_', '-')}"
    record_id, key = _add(app, worker, workspace)
    original = _stored_row(database, record_id)

    _write_row(database, record_id, {column: _flip(bytes(original[column]))})
    _resign(database, row_mac, record_id)

    _assert_integrity_failure(worker, workspace, "openai", key)
    _write_row(database, record_id, {name: original[name] for name in (column, "mac")})


def test_integrity_errors_are_uniform(app, worker, database, row_mac):
    """Check that failures caught by three different layers raise indistinguishable errors."""
    record_id, key = _add(app, worker, "uniform-errors")
    original = _stored_row(database, record_id)
    seen = set()
    for column, resign in (("mac", False), ("wrap_a", True), ("wrap_b", True), ("ciphertext", True)):
        _write_row(database, record_id, {column: _flip(bytes(original[column]))})
        if resign:
            _resign(database, row_mac, record_id)
        with pytest.raises(IntegrityError) as caught:
            worker.decrypt("uniform-errors", "openai")
        seen.add((type(caught.value), str(caught.value), caught.value.args))
        _write_row(database, record_id, {name: original[name] for name in (column, "mac")})
    assert seen == {(IntegrityError, IntegrityError.MESSAGE, (IntegrityError.MESSAGE,))}
    assert worker.decrypt("uniform-errors", "openai").reveal() == key


# -- a keystore that returns another record ---------------------------------------------


class _RedirectingKeystore(keystore_pb2_grpc.KeystoreServicer):
    """A malicious keystore front: forwards FetchKey to the real keystore after rewriting it."""

    def __init__(self, upstream: keystore_pb2_grpc.KeystoreStub):
        self.upstream = upstream
        self.workspace: str | None = None
        self.model: str | None = None
        self.forwarded = 0

    def FetchKey(self, request, context):
        forwarded = keystore_pb2.FetchKeyRequest()
        forwarded.CopyFrom(request)
        if self.workspace is not None:
            forwarded.workspace = self.workspace
        if self.model is not None:
            forwarded.model = self.model
        try:
            reply = self.upstream.FetchKey(forwarded, timeout=10)
        except grpc.RpcError as error:
            context.abort(error.code(), error.details())
        self.forwarded += 1
        return reply


@pytest.fixture(scope="module")
def proxy(deployment):
    """The proxy listens with the real keystore's server certificate and client CA, so mTLS succeeds."""
    upstream_channel = raw_channel(deployment, "worker", "keystore")
    servicer = _RedirectingKeystore(keystore_pb2_grpc.KeystoreStub(upstream_channel))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    keystore_pb2_grpc.add_KeystoreServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [((deployment.root / "keystore/server.key").read_bytes(), (deployment.root / "keystore/server.pem").read_bytes())],
        root_certificates=(deployment.root / "ca/keystore-ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield servicer, port
    server.stop(0).wait()
    upstream_channel.close()


@pytest.fixture
def proxied_worker(deployment, proxy):
    from client import KeyClient

    servicer, port = proxy
    servicer.workspace = servicer.model = None
    path = write_client_config(deployment, "worker", "client-worker-proxied.toml", {"keystore": {"address": f"127.0.0.1:{port}"}})
    with KeyClient.from_config(path, harden=False) as client:
        yield client


def _unwraps_logged(deployment) -> int:
    return deployment.secret.stderr().count("released share_b")


def test_proxy_passes_honest_replies(app, worker, proxy, proxied_worker):
    _record_id, key = _add(app, worker, "proxy-honest")
    servicer, _port = proxy

    assert proxied_worker.decrypt("proxy-honest", "openai").reveal() == key
    assert servicer.forwarded >= 1


def test_keystore_returning_other_workspace(app, worker, deployment, proxy, proxied_worker):
    _mine, my_key = _add(app, worker, "proxy-mine")
    _other, other_key = _add(app, worker, "proxy-other")
    servicer, _port = proxy
    servicer.workspace = "proxy-other"
    forwarded_before = servicer.forwarded
    unwraps_before = _unwraps_logged(deployment)

    with pytest.raises(IntegrityError) as caught:
        proxied_worker.decrypt("proxy-mine", "openai")

    assert servicer.forwarded == forwarded_before + 1
    assert str(caught.value) == IntegrityError.MESSAGE
    assert other_key not in repr(caught.value)
    assert my_key not in repr(caught.value)
    # The client rejected the reply before it asked the secret server for share_b.
    assert _unwraps_logged(deployment) == unwraps_before


def test_keystore_returning_other_provider(app, worker, deployment, proxy, proxied_worker):
    _add(app, worker, "proxy-providers", "anthropic")
    _add(app, worker, "proxy-providers", "google")
    servicer, _port = proxy
    servicer.model = "google"
    unwraps_before = _unwraps_logged(deployment)

    with pytest.raises(IntegrityError) as caught:
        proxied_worker.decrypt("proxy-providers", "anthropic")

    assert str(caught.value) == IntegrityError.MESSAGE
    assert _unwraps_logged(deployment) == unwraps_before


def test_malformed_stored_record_id_is_integrity_failure(app, worker, database):
    """A stored id that is no longer 32 hex digits is corruption: IntegrityError, not INVALID_ARGUMENT."""
    record_id, key = _add(app, worker, "flip-malformed-id")
    malformed = "`" + record_id[1:]
    _write_row(database, record_id, {"record_id": malformed})

    _assert_integrity_failure(worker, "flip-malformed-id", "openai", key)

    _write_row(database, malformed, {"record_id": record_id})
    assert worker.decrypt("flip-malformed-id", "openai").reveal() == key
