"""The audit logs of the real servers: entries, witnessing, auditor RPCs and CLI.

One deployment serves the whole module. Tests that count entries match them
by request id or record id, so they do not depend on test order.
"""

from __future__ import annotations

import json
import secrets
import time

import grpc
import nacl.public
import nacl.signing
import pytest

from client import KeyClient
from client.audit_client import AuditClient
from client.cli.audit_commands import verify_logs
from splitkey import record
from splitkey.audit.export import export_jsonl, load_export
from splitkey.audit.reconcile import reconcile
from splitkey.context import Context
from splitkey.audit.store import open_reader
from splitkey.errors import PermissionDeniedError, PreconditionError
from splitkey.v1 import audit_pb2, keystore_pb2, keystore_pb2_grpc, secret_pb2, secret_pb2_grpc
from tests.audit_server_support import (
    audit_path,
    certificate_fingerprint,
    create_deployment,
    read_entries,
    read_jsonl,
    run_audit_cli,
    server_entries,
    wait_for,
)
from tests.pki_helpers import TRUST_DOMAIN, raw_channel, rpc_status, spiffe, write_pair
from tests.test_audit_support import rechain_from, resign_checkpoints, write_lines

APP = spiffe("app")
WORKER = spiffe("worker")
AUDIT_SERVICE = "/splitkey.v1.AuditLog/"


def _api_key() -> str:
    return "sk-proj-TESTONLY-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    running = create_deployment(tmp_path_factory.mktemp("audit-servers") / "dev").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def app(deployment):
    with deployment.client("app") as client:
        yield client


@pytest.fixture(scope="module")
def worker(deployment):
    with deployment.client("worker") as client:
        yield client


@pytest.fixture(scope="module")
def auditor(deployment):
    with AuditClient.from_config(deployment.client_config("auditor")) as client:
        yield client


@pytest.fixture(scope="module")
def one_use(deployment, app, worker):
    """Store a key and decrypt it once; return the record id, the request id and the context hash."""
    added = app.add_key("ws-use", "openai", _api_key())
    worker.decrypt("ws-use", "openai")
    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", record_id=added.record_id)
    return {"record_id": added.record_id, "request_id": fetch.request_id, "context_hash": fetch.context_hash}


def _wait_for_witness(deployment, witness_server: str, seq: int) -> None:
    """Wait until `witness_server`'s log contains a witnessed head of the other log at `seq` or later."""
    wait_for(
        lambda: [e for e in server_entries(deployment, witness_server, action="witness") if e.peer_seq >= seq],
        what=f"{witness_server} witnessing the other log's head at seq {seq}",
    )


def test_every_call_logged_with_ids_and_no_secrets(deployment, app, worker, monkeypatch):
    secrets_seen: list[bytes] = []
    real_split, real_seal, real_combine = record.split_dek, record.seal_content, record.combine_shares

    def split(dek, *args, **kwargs):
        shares = real_split(dek, *args, **kwargs)
        secrets_seen.extend([dek, *shares])
        return shares

    def seal(dek, key, context, *args, **kwargs):
        ciphertext = real_seal(dek, key, context, *args, **kwargs)
        secrets_seen.append(ciphertext)
        return ciphertext

    def combine(share_a, share_b):
        dek = real_combine(share_a, share_b)
        secrets_seen.extend([share_a, share_b, dek])
        return dek

    monkeypatch.setattr(record, "split_dek", split)
    monkeypatch.setattr(record, "seal_content", seal)
    monkeypatch.setattr(record, "combine_shares", combine)
    api_key = _api_key()

    added = app.add_key("ws-ids", "openai", api_key)
    with worker.use_key("ws-ids", "openai") as key:
        assert key.reveal() == api_key
    with pytest.raises(PermissionDeniedError):
        app.decrypt("ws-ids", "openai")
    with pytest.raises(PermissionDeniedError):
        worker.add_key("ws-ids", "openai", _api_key())

    context_hash = Context(TRUST_DOMAIN, "ws-ids", "openai", added.record_id).digest().hex()
    root = deployment.root
    (put,) = server_entries(deployment, "keystore", action="PutKey", record_id=added.record_id)
    assert (put.actor, put.outcome, put.context_hash) == (APP, "allowed", context_hash)
    assert put.cert_fingerprint == certificate_fingerprint(root / "clients/app/keystore.pem")
    assert put.request_id
    (wrap,) = server_entries(deployment, "secret", action="WrapShare", record_id=added.record_id)
    assert (wrap.actor, wrap.outcome, wrap.context_hash) == (APP, "allowed", context_hash)
    assert wrap.cert_fingerprint == certificate_fingerprint(root / "clients/app/secret.pem")

    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", record_id=added.record_id, outcome="allowed")
    (unwrap,) = server_entries(deployment, "secret", action="UnwrapShare", record_id=added.record_id)
    assert (fetch.actor, fetch.context_hash, fetch.workspace) == (WORKER, context_hash, "ws-ids")
    assert (unwrap.actor, unwrap.context_hash, unwrap.outcome) == (WORKER, context_hash, "allowed")
    assert unwrap.request_id == fetch.request_id
    assert fetch.key_versions == "a1,b1"
    assert unwrap.key_versions == "b1"
    assert unwrap.cert_fingerprint == certificate_fingerprint(root / "clients/worker/secret.pem")

    denied_fetch = server_entries(deployment, "keystore", action="FetchKey", actor=APP, outcome="denied")
    assert len(denied_fetch) == 1
    assert "may not call FetchKey" in denied_fetch[0].reason
    denied_wrap = server_entries(deployment, "secret", action="WrapShare", actor=WORKER, outcome="denied")
    assert len(denied_wrap) == 1
    assert "may not call WrapShare" in denied_wrap[0].reason

    assert len(secrets_seen) >= 6, "the client did not go through the patched record functions"
    for server in ("keystore", "secret"):
        path = audit_path(deployment, server)
        stored = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        assert api_key.encode() not in stored, f"{server} audit log holds the API key"
        assert api_key[-12:].encode() not in stored, f"{server} audit log holds part of the API key"
        for value in secrets_seen:
            assert value not in stored, f"{server} audit log holds a share, DEK or ciphertext"
            assert value.hex().encode() not in stored, f"{server} audit log holds a share, DEK or ciphertext in hex"


def test_auditor_rpcs_allowed_only_for_auditor(deployment, tmp_path):
    root = deployment.root
    checks = []
    for server in ("keystore", "secret"):
        port, ca = getattr(deployment, server).port, root / f"ca/{server}-ca.pem"
        for role in ("app", "worker", "security", "auditor"):
            channel = raw_channel(port, ca, root / f"clients/{role}/{server}.pem", root / f"clients/{role}/{server}.key")
            for method, streaming in (("StreamEntries", True), ("GetCheckpoints", False), ("LatestHead", False),
                                      ("WitnessHead", False)):
                code, _details = rpc_status(channel, AUDIT_SERVICE + method, streaming=streaming)
                expected_ok = role == "auditor" and method != "WitnessHead"
                checks.append((server, role, method, code == grpc.StatusCode.OK, expected_ok, code))
            channel.close()
    wrong = [check for check in checks if check[3] != check[4]]
    assert wrong == []


def test_witness_head_only_from_keystore_identity(deployment):
    root = deployment.root
    channel = raw_channel(deployment.secret.port, root / "ca/secret-ca.pem", root / "keystore/to-secret.pem",
                          root / "keystore/to-secret.key")
    try:
        code, details = rpc_status(channel, AUDIT_SERVICE + "WitnessHead")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "head is missing" in details
        forged = audit_pb2.WitnessHeadRequest(head=audit_pb2.AuditSignedHead(
            server_id="keystore", seq=1, entry_hash="ab" * 32, time_ms=1, signature="cd" * 64,
        ))
        code, _details = rpc_status(channel, AUDIT_SERVICE + "WitnessHead", forged.SerializeToString())
        assert code == grpc.StatusCode.DATA_LOSS
    finally:
        channel.close()


def test_each_log_witnesses_the_other(deployment, one_use):
    (unwrap,) = server_entries(deployment, "secret", action="UnwrapShare", request_id=one_use["request_id"])
    _wait_for_witness(deployment, "keystore", unwrap.seq)
    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", request_id=one_use["request_id"])
    _wait_for_witness(deployment, "secret", fetch.seq)
    for server, peer in (("keystore", "secret"), ("secret", "keystore")):
        witnesses = server_entries(deployment, server, action="witness")
        assert {entry.peer_server_id for entry in witnesses} == {peer}
        assert all(entry.outcome == "allowed" for entry in witnesses)


def test_idle_servers_stop_exchanging_heads(deployment, one_use):
    # Several exchange intervals without requests; the counts must settle and then stay put.
    time.sleep(1.5)
    before = [len(read_entries(audit_path(deployment, server))) for server in ("keystore", "secret")]
    time.sleep(1.5)
    after = [len(read_entries(audit_path(deployment, server))) for server in ("keystore", "secret")]
    assert after == before


def test_live_logs_verify_and_pin(deployment, one_use, tmp_path):
    pins = tmp_path / "pins.json"
    first = run_audit_cli(deployment, "verify", "--pin", str(pins))
    assert first.returncode == 0, first.stdout + first.stderr
    pinned = json.loads(pins.read_text())["logs"]
    assert set(pinned) == {"keystore", "secret"}

    second = run_audit_cli(deployment, "verify", "--pin", str(pins), "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    reports = json.loads(second.stdout)
    assert [report["ok"] for report in reports] == [True, True]
    assert {report["pinned_seq"] for report in reports} == {pinned["keystore"]["head"]["seq"],
                                                            pinned["secret"]["head"]["seq"]}


def _export(deployment, server: str, path) -> list[dict]:
    result = run_audit_cli(deployment, "export", "--server", server, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return read_jsonl(path)


def _verify_file(deployment, path, *extra: str) -> dict:
    result = run_audit_cli(deployment, "verify", str(path), "--json", *extra)
    (report,) = json.loads(result.stdout)
    assert (result.returncode == 0) == report["ok"]
    return report


@pytest.mark.parametrize("tampering", ["edit", "delete", "reorder", "truncate"])
def test_verify_names_first_bad_seq_of_export(deployment, one_use, tmp_path, tampering):
    lines = _export(deployment, "secret", tmp_path / "secret.jsonl")
    assert _verify_file(deployment, tmp_path / "secret.jsonl")["ok"]
    entries = [line for line in lines if line["type"] == "entry"]
    target = next(line for line in entries if line["request_id"] == one_use["request_id"])
    seq = target["seq"]

    if tampering == "edit":
        target["actor"] = spiffe("worker", "someone-else")
        expected = seq
    elif tampering == "delete":
        lines.remove(target)
        expected = seq
    elif tampering == "reorder":
        index = lines.index(target)
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
        expected = seq
    else:
        newest = max(line["seq"] for line in lines if line["type"] == "checkpoint")
        lines = [line for line in lines if line["type"] != "entry" or line["seq"] < newest]
        expected = newest
    report = _verify_file(deployment, write_lines(lines, tmp_path / "tampered.jsonl"))
    assert not report["ok"]
    assert report["first_bad_seq"] == expected


def test_pinned_head_catches_truncation_without_checkpoints(deployment, one_use, tmp_path):
    pins = tmp_path / "pins.json"
    assert run_audit_cli(deployment, "verify", "--pin", str(pins)).returncode == 0
    pinned_seq = json.loads(pins.read_text())["logs"]["secret"]["head"]["seq"]
    lines = _export(deployment, "secret", tmp_path / "secret.jsonl")
    # Drop every entry from the pinned head on, and every checkpoint that would reveal it.
    kept = [line for line in lines if line["type"] == "header" or line["seq"] < pinned_seq]
    assert _verify_file(deployment, write_lines(kept, tmp_path / "cut.jsonl"))["ok"]

    report = _verify_file(deployment, tmp_path / "cut.jsonl", "--pin", str(pins))
    assert not report["ok"]
    assert "truncated" in {problem["kind"] for problem in report["problems"]}
    assert report["first_bad_seq"] == pinned_seq


def test_self_rewrite_caught_by_other_servers_witness(deployment, auditor, one_use, tmp_path):
    (unwrap,) = server_entries(deployment, "secret", action="UnwrapShare", request_id=one_use["request_id"])
    _wait_for_witness(deployment, "keystore", unwrap.seq)
    export_jsonl(auditor.export("secret"), tmp_path / "secret.jsonl")
    keystore_log = auditor.export("keystore")

    lines = read_jsonl(tmp_path / "secret.jsonl")
    target = next(line for line in lines if line["type"] == "entry" and line["seq"] == unwrap.seq)
    target["request_id"] = "0" * 32
    rechain_from(lines, unwrap.seq)
    signing_key = nacl.signing.SigningKey(bytes.fromhex((deployment.root / "secret/audit-signing.key").read_text()))
    resign_checkpoints(lines, signing_key)
    rewritten = load_export(write_lines(lines, tmp_path / "rewritten.jsonl"))

    (alone,) = verify_logs([rewritten], {})
    assert alone.ok, "a rewrite re-signed by the log's own key should pass on its own"
    secret_report, keystore_report = verify_logs([rewritten, keystore_log], {})
    # The keystore's own chain is intact; its check of the secret heads it witnessed flags the secret log.
    assert keystore_report.first_bad_seq is None
    assert {(p.kind, p.server_id) for p in keystore_report.problems} == {("peer-fork", "secret")}
    assert "fork" in secret_report.kinds()
    assert secret_report.first_bad_seq is not None
    assert secret_report.first_bad_seq <= max(e.peer_seq for e in keystore_log.entries if e.action == "witness")


def test_use_reconciles_and_missing_entry_is_flagged(deployment, one_use, tmp_path):
    keystore_lines = _export(deployment, "keystore", tmp_path / "keystore.jsonl")
    secret_lines = _export(deployment, "secret", tmp_path / "secret.jsonl")

    def findings(secret_path):
        result = run_audit_cli(deployment, "reconcile", "--keystore-export", str(tmp_path / "keystore.jsonl"),
                               "--secret-export", str(secret_path), "--json")
        document = json.loads(result.stdout)
        return result.returncode, document

    code, clean = findings(tmp_path / "secret.jsonl")
    assert clean["uses_matched"] >= 1
    assert [f for f in clean["findings"] if f["request_id"] == one_use["request_id"]] == []
    assert keystore_lines

    without_unwrap = [line for line in secret_lines
                      if not (line["type"] == "entry" and line["request_id"] == one_use["request_id"])]
    code, flagged = findings(write_lines(without_unwrap, tmp_path / "secret-edited.jsonl"))
    missing = [f for f in flagged["findings"] if f["request_id"] == one_use["request_id"]]
    assert [f["kind"] for f in missing] == ["missing-unwrap"]
    assert missing[0]["server_id"] == "keystore"


def _tombstoned(deployment, record_id: str) -> bool:
    connection = open_reader(deployment.root / "secret" / "data" / "secret.sqlite3")
    try:
        return connection.execute("SELECT 1 FROM tombstones WHERE record_id = ?", (record_id,)).fetchone() is not None
    finally:
        connection.close()


def test_failed_unwrap_not_reported_missing(deployment, app, auditor, monkeypatch):
    old = app.add_key("ws-replaced", "openai", _api_key())
    check_context = KeyClient._check_context

    def replace_between_calls(self, fetched, **kwargs):
        context = check_context(self, fetched, **kwargs)
        app.add_key("ws-replaced", "openai", _api_key())
        wait_for(lambda: _tombstoned(deployment, old.record_id), what=f"tombstone of record {old.record_id}")
        return context

    monkeypatch.setattr(KeyClient, "_check_context", replace_between_calls)
    with KeyClient.from_config(deployment.client_config("worker"), harden=False) as worker:
        with pytest.raises(PreconditionError, match="replaced or removed"):
            worker.decrypt("ws-replaced", "openai")
    monkeypatch.undo()

    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", record_id=old.record_id)
    (unwrap,) = server_entries(deployment, "secret", action="UnwrapShare", record_id=old.record_id)
    assert fetch.outcome == "allowed"
    assert unwrap.outcome == "error"
    assert "replaced or removed" in unwrap.reason
    assert (unwrap.request_id, unwrap.actor, unwrap.context_hash) == (fetch.request_id, fetch.actor,
                                                                      fetch.context_hash)

    result = reconcile(auditor.export("keystore"), auditor.export("secret"))
    about = [f for f in result.findings if f.request_id == fetch.request_id]
    assert [(f.kind, f.severity, f.server_id, f.seq) for f in about] == [("failed-unwrap", "low", "secret", unwrap.seq)]
    assert "replaced or removed" in about[0].message


def test_reused_request_id_is_flagged(deployment, app, auditor, monkeypatch):
    app.add_key("ws-reuse", "openai", _api_key())
    reused = secrets.token_hex(16)
    monkeypatch.setattr("client.key_client._new_request_id", lambda: reused)
    with KeyClient.from_config(deployment.client_config("worker"), harden=False) as worker:
        worker.decrypt("ws-reuse", "openai")
        with pytest.raises(PermissionDeniedError):
            worker.decrypt("ws-reuse", "openai")

    result = reconcile(auditor.export("keystore"), auditor.export("secret"))
    reuse = [f for f in result.by_kind("reused-request-id") if f.request_id == reused]
    (denied,) = server_entries(deployment, "secret", action="UnwrapShare", request_id=reused, outcome="denied")
    assert "already used" in denied.reason
    # Both fetches have the same actor and context, so only the rejected second grant shows the reuse.
    assert [(f.server_id, f.seq, f.severity) for f in reuse] == [("secret", denied.seq, "high")]


def _worker_stubs(deployment):
    """Return raw Keystore and SecretServer stubs with the worker's certificates, and their channels."""
    root = deployment.root
    channels = [
        raw_channel(getattr(deployment, server).port, root / f"ca/{server}-ca.pem",
                    root / f"clients/worker/{server}.pem", root / f"clients/worker/{server}.key")
        for server in ("keystore", "secret")
    ]
    return keystore_pb2_grpc.KeystoreStub(channels[0]), secret_pb2_grpc.SecretServerStub(channels[1]), channels


def _unwrap_request(fetched, request_id: str, reply_key: bytes) -> secret_pb2.UnwrapShareRequest:
    return secret_pb2.UnwrapShareRequest(request_id=request_id, context=fetched.context, wrap_b=fetched.wrap_b,
                                         grant=fetched.grant, reply_key=reply_key)


def test_retried_calls_reconcile_as_one_use(deployment, app, auditor):
    app.add_key("ws-retry", "openai", _api_key())
    request_id = secrets.token_hex(16)
    reply_private = nacl.public.PrivateKey.generate()
    fetch = keystore_pb2.FetchKeyRequest(request_id=request_id, workspace="ws-retry", model="openai",
                                         reply_key=bytes(reply_private.public_key))
    keystore, secret, channels = _worker_stubs(deployment)
    try:
        # What the client's retries send after lost replies: the very same requests again.
        keystore.FetchKey(fetch, timeout=10)
        fetched = keystore.FetchKey(fetch, timeout=10)
        unwrap = _unwrap_request(fetched, request_id, fetch.reply_key)
        replies = [secret.UnwrapShare(unwrap, timeout=10) for _attempt in range(2)]
    finally:
        for channel in channels:
            channel.close()

    opener = nacl.public.SealedBox(reply_private)
    assert opener.decrypt(replies[0].sealed_share_b) == opener.decrypt(replies[1].sealed_share_b)
    assert len(server_entries(deployment, "keystore", action="FetchKey", request_id=request_id)) == 2
    assert len(server_entries(deployment, "secret", action="UnwrapShare", request_id=request_id)) == 2

    keystore_log, secret_log = auditor.export("keystore"), auditor.export("secret")
    result = reconcile(keystore_log, secret_log)
    assert [f for f in result.findings if f.request_id == request_id] == []
    strict = reconcile(keystore_log, secret_log, max_attempts=1)
    retried = [(f.kind, f.severity, f.server_id, f.count) for f in strict.findings if f.request_id == request_id]
    assert sorted(retried) == [("many-retries", "low", "keystore", 2), ("many-retries", "low", "secret", 2)]


def test_request_id_on_two_contexts_is_flagged(deployment, app, auditor):
    app.add_key("ws-reuse-a", "openai", _api_key())
    app.add_key("ws-reuse-b", "openai", _api_key())
    request_id = secrets.token_hex(16)
    reply_key = bytes(nacl.public.PrivateKey.generate().public_key)
    unwrap_codes = []
    keystore, secret, channels = _worker_stubs(deployment)
    try:
        for workspace in ("ws-reuse-a", "ws-reuse-b"):
            fetch = keystore_pb2.FetchKeyRequest(request_id=request_id, workspace=workspace, model="openai",
                                                 reply_key=reply_key)
            fetched = keystore.FetchKey(fetch, timeout=10)
            try:
                secret.UnwrapShare(_unwrap_request(fetched, request_id, reply_key), timeout=10)
                unwrap_codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                unwrap_codes.append(error.code())
    finally:
        for channel in channels:
            channel.close()

    assert unwrap_codes == [grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED]
    fetches = server_entries(deployment, "keystore", action="FetchKey", request_id=request_id)
    assert [e.workspace for e in fetches] == ["ws-reuse-a", "ws-reuse-b"]
    assert fetches[0].context_hash != fetches[1].context_hash

    def denials():
        # An earlier test's identical denial may have opened a folding window; a checkpoint writes the count.
        auditor.latest_head("secret")
        return server_entries(deployment, "secret", action="UnwrapShare", request_id=request_id, outcome="denied")

    (denied,) = wait_for(denials, what="the secret server's denial of the second grant")
    assert "already used with another grant" in denied.reason

    result = reconcile(auditor.export("keystore"), auditor.export("secret"))
    reuse = [(f.server_id, f.seq, f.severity) for f in result.by_kind("reused-request-id")
             if f.request_id == request_id]
    assert sorted(reuse) == [("keystore", fetches[1].seq, "high"), ("secret", denied.seq, "high")]


def test_query_filters_over_rpc(deployment, one_use):
    result = run_audit_cli(deployment, "query", "--record", one_use["record_id"], "--outcome", "allowed", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(row["server_id"], row["action"]) for row in rows} >= {
        ("keystore", "PutKey"), ("keystore", "FetchKey"), ("secret", "WrapShare"), ("secret", "UnwrapShare"),
    }
    assert all(row["record_id"] == one_use["record_id"] for row in rows)

    table = run_audit_cli(deployment, "query", "--server", "secret", "--action", "UnwrapShare",
                          "--workspace", "ws-use")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].startswith("SERVER")
    assert one_use["request_id"] in table.stdout
    assert "keystore " not in table.stdout


def test_stream_rejects_bad_filter(deployment, auditor):
    from splitkey.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="outcome"):
        list(auditor.entries("keystore", outcome="maybe"))


def test_unknown_identity_denial_is_logged(deployment, tmp_path):
    from splitkey.pki.certs import issue_leaf
    from tests.pki_helpers import deployment_ca

    leaf = issue_leaf(deployment_ca(deployment.root, "keystore"), uris=["spiffe://other.test/worker/x"])
    cert, key = write_pair(tmp_path, "stranger", leaf)
    channel = raw_channel(deployment.keystore.port, deployment.root / "ca/keystore-ca.pem", cert, key)
    try:
        code, _details = rpc_status(channel, "/splitkey.v1.Keystore/FetchKey")
    finally:
        channel.close()
    assert code == grpc.StatusCode.PERMISSION_DENIED
    denied = [e for e in server_entries(deployment, "keystore", action="FetchKey", outcome="denied")
              if e.actor.startswith("unidentified peer")]
    assert denied, "the denial of a certificate outside the trust domain is not in the log"
    assert "trust domain" in denied[-1].reason


class _ExchangeBetweenReads(AuditClient):
    """An auditor client that, right after reading the keystore log, waits for a head
    exchange that makes the secret server witness a keystore head beyond that read."""

    def __init__(self, config, deployment, worker):
        super().__init__(config)
        self._deployment = deployment
        self._worker = worker
        self.keystore_read_end = 0

    def export(self, server):
        exported = super().export(server)
        if server == "keystore":
            self.keystore_read_end = exported.entries[-1].seq
            # A decryption moves both heads, so the next exchange pushes a newer keystore head.
            self._worker.decrypt("ws-use", "openai")
            _wait_for_witness(self._deployment, "secret", self.keystore_read_end + 1)
        return exported


def _racing_client(deployment, worker) -> _ExchangeBetweenReads:
    from splitkey.config import load_client_config

    return _ExchangeBetweenReads(load_client_config(deployment.client_config("auditor")), deployment, worker)


def test_live_read_rereads_tail_after_exchange(deployment, worker, one_use):
    with _racing_client(deployment, worker) as client:
        raced = client.export_both(max_rereads=0)
    keystore_report, _secret_report = verify_logs([raced["keystore"], raced["secret"]], {})
    assert "truncated" in keystore_report.kinds(), "the exchange between the two reads was not reproduced"

    with _racing_client(deployment, worker) as client:
        logs = client.export_both()
    assert logs["keystore"].entries[-1].seq > client.keystore_read_end
    reports = verify_logs([logs["keystore"], logs["secret"]], {})
    assert [report.problems for report in reports] == [[], []]


class _HiddenKeystoreTail(AuditClient):
    """An auditor client that sees the keystore log cut before `cut_seq`, as a keystore
    that deleted its newest entries (and keeps hiding new ones) would serve it."""

    cut_seq = 0

    def entries(self, server, *, limit=0, **filters):
        entries = super().entries(server, limit=limit, **filters)
        if server != "keystore":
            return entries
        return iter([entry for entry in entries if entry.seq < self.cut_seq])


def test_live_read_reports_truncation_that_persists(deployment, one_use):
    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", request_id=one_use["request_id"])
    _wait_for_witness(deployment, "secret", fetch.seq)
    witnessed = max(e.peer_seq for e in server_entries(deployment, "secret", action="witness"))

    with _HiddenKeystoreTail.from_config(deployment.client_config("auditor")) as client:
        client.cut_seq = witnessed
        logs = client.export_both()
    assert logs["keystore"].entries[-1].seq == witnessed - 1
    keystore_report, secret_report = verify_logs([logs["keystore"], logs["secret"]], {})
    truncated = [p for p in keystore_report.problems if p.kind == "truncated"]
    assert truncated, str(keystore_report)
    assert keystore_report.first_bad_seq == witnessed
    assert "peer-truncated" in secret_report.kinds()


def _decrypt_until(deployment, stop, errors: list) -> None:
    try:
        with deployment.client("worker") as client:
            while not stop.is_set():
                client.decrypt("ws-load", "openai")
    except Exception as error:  # noqa: BLE001 - reported by the test
        errors.append(error)


def test_live_verify_passes_under_decrypt_load(deployment, app):
    import threading

    app.add_key("ws-load", "openai", _api_key())
    stop = threading.Event()
    errors: list = []
    load = threading.Thread(target=_decrypt_until, args=(deployment, stop, errors))
    load.start()
    try:
        results = [run_audit_cli(deployment, "verify") for _ in range(3)]
    finally:
        stop.set()
        load.join(30)
    assert errors == []
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
