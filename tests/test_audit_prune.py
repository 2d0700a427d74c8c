"""Pruning the audit logs of the real servers: `splitkey audit prune` and the Prune RPC.

One deployment serves the whole module. Each test exports the log it needs
right before it prunes, so the tests do not depend on order.
"""

from __future__ import annotations

import dataclasses
import json
import secrets

import nacl.signing
import pytest

from client.audit_client import AuditClient
from splitkey.audit.entry import ZERO_HASH
from splitkey.audit.export import load_export
from splitkey.audit.head import sign_head
from splitkey.errors import IntegrityError, PermissionDeniedError, PreconditionError
from tests.audit_server_support import audit_path, create_deployment, read_entries, read_jsonl, run_audit_cli
from tests.pki_helpers import spiffe
from tests.test_audit_support import write_lines

SERVERS = ("keystore", "secret")
SECURITY = spiffe("security")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    running = create_deployment(tmp_path_factory.mktemp("audit-prune") / "dev").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def auditor(deployment):
    with AuditClient.from_config(deployment.client_config("auditor")) as client:
        yield client


@pytest.fixture(scope="module")
def security(deployment):
    with AuditClient.from_config(deployment.client_config("security")) as client:
        yield client


@pytest.fixture(autouse=True)
def some_uses(deployment):
    """Store a key and decrypt it, so that both logs grow before every test."""
    with deployment.client("app") as app, deployment.client("worker") as worker:
        app.add_key("ws-prune", "openai", "sk-proj-TESTONLY-" + secrets.token_hex(16))
        worker.decrypt("ws-prune", "openai")


def _fresh_export(deployment, auditor, server: str, path):
    """Sign the server's current head, export its log with the CLI, and return the loaded export."""
    auditor.latest_head(server)
    result = run_audit_cli(deployment, "export", "--server", server, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return load_export(path)


def _verify_file(deployment, path, *extra: str) -> dict:
    result = run_audit_cli(deployment, "verify", str(path), "--json", *extra)
    (report,) = json.loads(result.stdout)
    assert (result.returncode == 0) == report["ok"]
    return report


def _stored_seqs(deployment, server: str) -> list[int]:
    return [entry.seq for entry in read_entries(audit_path(deployment, server))]


def _signing_key(deployment, server: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes.fromhex((deployment.root / f"{server}/audit-signing.key").read_text()))


@pytest.mark.parametrize("server", SERVERS)
def test_prune_after_verified_export(deployment, auditor, server, tmp_path):
    pins = tmp_path / "pins.json"
    exported = _fresh_export(deployment, auditor, server, tmp_path / "before.jsonl")
    assert _verify_file(deployment, tmp_path / "before.jsonl", "--pin", str(pins))["ok"]
    checkpoint = max(exported.checkpoints, key=lambda head: head.seq)
    assert checkpoint.seq > exported.anchor_seq + 1, "the export holds too few entries to show a prune"

    result = run_audit_cli(deployment, "prune", "--server", server, "--export", str(tmp_path / "before.jsonl"),
                           "--pin", str(pins), role="security")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pruned {checkpoint.seq - exported.anchor_seq} entries of {server}" in result.stdout
    assert f"new anchor: seq {checkpoint.seq}, hash {checkpoint.entry_hash}" in result.stdout
    stored = _stored_seqs(deployment, server)
    assert min(stored) == checkpoint.seq + 1
    assert json.loads(pins.read_text())["logs"][server]["head"] == checkpoint.to_dict()

    entries = read_entries(audit_path(deployment, server))
    (prune_entry,) = [entry for entry in entries if entry.action == "prune"
                      and f"up to the exported and verified checkpoint seq {checkpoint.seq} " in entry.reason]
    assert prune_entry.actor == SECURITY
    assert prune_entry.reason.startswith(f"deleted entries {exported.anchor_seq + 1}..{checkpoint.seq} ")
    calls = [entry for entry in entries if entry.action == "Prune" and entry.seq > prune_entry.seq]
    assert [(entry.actor, entry.outcome) for entry in calls] == [(SECURITY, "allowed")]

    after = _fresh_export(deployment, auditor, server, tmp_path / "after.jsonl")
    assert (after.anchor_seq, after.anchor_hash) == (checkpoint.seq, checkpoint.entry_hash)
    report = _verify_file(deployment, tmp_path / "after.jsonl", "--pin", str(pins))
    assert report["ok"], report["problems"]
    assert report["first_seq"] == checkpoint.seq + 1
    both = run_audit_cli(deployment, "verify")
    assert both.returncode == 0, both.stdout + both.stderr


def test_prune_twice_at_same_checkpoint_deletes_nothing(deployment, auditor, security, tmp_path):
    exported = _fresh_export(deployment, auditor, "secret", tmp_path / "secret.jsonl")
    checkpoint = max(exported.checkpoints, key=lambda head: head.seq)
    anchor = (exported.anchor_seq, exported.anchor_hash)

    first = security.prune("secret", checkpoint, anchor)
    second = security.prune("secret", checkpoint, anchor)

    assert first.pruned == checkpoint.seq - exported.anchor_seq
    assert first.prune_seq > checkpoint.seq
    assert (second.pruned, second.prune_seq) == (0, 0)
    assert (second.anchor_seq, second.anchor_hash) == (checkpoint.seq, checkpoint.entry_hash)


def test_prune_rejects_checkpoint_not_in_log(deployment, auditor, security, tmp_path):
    exported = _fresh_export(deployment, auditor, "keystore", tmp_path / "keystore.jsonl")
    newest = max(exported.checkpoints, key=lambda head: head.seq)
    # Validly signed by the log's own key, but over a hash the log never held.
    other = sign_head(_signing_key(deployment, "keystore"), "keystore", newest.seq, "ee" * 32, newest.time_ms)
    before = _stored_seqs(deployment, "keystore")

    with pytest.raises(PreconditionError, match=f"checkpoint seq {newest.seq} with hash e+ is not in this log"):
        security.prune("keystore", other, (exported.anchor_seq, exported.anchor_hash))

    assert min(_stored_seqs(deployment, "keystore")) == min(before)


def test_prune_rejects_forged_signature(deployment, auditor, security, tmp_path):
    exported = _fresh_export(deployment, auditor, "secret", tmp_path / "secret.jsonl")
    newest = max(exported.checkpoints, key=lambda head: head.seq)
    forged = dataclasses.replace(newest, signature="ab" * 64)
    before = _stored_seqs(deployment, "secret")

    with pytest.raises(IntegrityError):
        security.prune("secret", forged, (exported.anchor_seq, exported.anchor_hash))

    assert min(_stored_seqs(deployment, "secret")) == min(before)


def test_prune_rejects_export_with_other_anchor(deployment, auditor, security, tmp_path):
    exported = _fresh_export(deployment, auditor, "keystore", tmp_path / "keystore.jsonl")
    security.prune("keystore", max(exported.checkpoints, key=lambda head: head.seq),
                   (exported.anchor_seq, exported.anchor_hash))
    later = _fresh_export(deployment, auditor, "keystore", tmp_path / "later.jsonl")
    newest = max(later.checkpoints, key=lambda head: head.seq)
    before = _stored_seqs(deployment, "keystore")

    # An export that claims to start at the beginning, while the log starts after the anchor.
    with pytest.raises(PreconditionError, match=f"this log starts after seq {later.anchor_seq}"):
        security.prune("keystore", newest, (0, ZERO_HASH))

    assert min(_stored_seqs(deployment, "keystore")) == min(before)


def test_cli_rejects_unverifiable_export(deployment, auditor, tmp_path):
    _fresh_export(deployment, auditor, "secret", tmp_path / "secret.jsonl")
    lines = read_jsonl(tmp_path / "secret.jsonl")
    edited = next(line for line in lines if line["type"] == "entry" and line["action"] == "UnwrapShare")
    edited["actor"] = spiffe("worker", "someone-else")
    tampered = write_lines(lines, tmp_path / "tampered.jsonl")
    before = read_entries(audit_path(deployment, "secret"))

    result = run_audit_cli(deployment, "prune", "--server", "secret", "--export", str(tampered), role="security")

    assert result.returncode == 1
    assert "failed verification" in result.stderr
    assert f"first bad seq {edited['seq']}" in result.stdout
    after = read_entries(audit_path(deployment, "secret"))
    assert after[0].seq == before[0].seq
    assert not [entry for entry in after[len(before):] if entry.action in ("Prune", "prune")]


def test_cli_rejects_export_failing_pin(deployment, auditor, tmp_path):
    pins = tmp_path / "pins.json"
    old = _fresh_export(deployment, auditor, "keystore", tmp_path / "old.jsonl")
    # This call's own audit entry lands after the old export, so the next signed
    # head is past the old export's end even when no witness exchange runs.
    auditor.latest_head("keystore")
    _fresh_export(deployment, auditor, "keystore", tmp_path / "new.jsonl")
    assert _verify_file(deployment, tmp_path / "new.jsonl", "--pin", str(pins))["ok"]
    pinned = json.loads(pins.read_text())["logs"]
    assert max(entry.seq for entry in old.entries) < pinned["keystore"]["head"]["seq"]
    before = _stored_seqs(deployment, "keystore")

    # The older export ends before the pinned head, so it looks truncated against the pin.
    result = run_audit_cli(deployment, "prune", "--server", "keystore", "--export", str(tmp_path / "old.jsonl"),
                           "--pin", str(pins), role="security")

    assert result.returncode == 1
    assert "truncated" in result.stdout
    assert min(_stored_seqs(deployment, "keystore")) == min(before)


@pytest.mark.parametrize("role", ["auditor", "worker"])
@pytest.mark.parametrize("server", SERVERS)
def test_prune_denied_to_other_roles(deployment, auditor, role, server, tmp_path):
    exported = _fresh_export(deployment, auditor, server, tmp_path / "log.jsonl")
    newest = max(exported.checkpoints, key=lambda head: head.seq)
    before = _stored_seqs(deployment, server)

    with AuditClient.from_config(deployment.client_config(role)) as client:
        with pytest.raises(PermissionDeniedError, match=f"role '{role}' may not call Prune"):
            client.prune(server, newest, (exported.anchor_seq, exported.anchor_hash))

    assert min(_stored_seqs(deployment, server)) == min(before)
    denied = [entry for entry in read_entries(audit_path(deployment, server))
              if entry.action == "Prune" and entry.outcome == "denied" and entry.actor == spiffe(role)]
    assert denied, f"the denied Prune by {role} is not in the {server} log"
