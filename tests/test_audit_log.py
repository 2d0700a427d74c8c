"""AuditLog on real SQLite files: chain, schema, folding, checkpoints, witnessing, queries, pruning."""

from __future__ import annotations

import time

import nacl.signing
import pytest

from splitkey.audit import AuditRecord, SignedHead, verify_export
from splitkey.audit.entry import ZERO_HASH
from splitkey.errors import AuditUnavailableError, ConfigError, IntegrityError, InvalidInputError, PreconditionError
from tests.test_audit_support import (
    WORKER,
    SettableClock,
    denial,
    export_file,
    export_lines,
    open_log,
    use_record,
)


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_genesis_names_log_and_key(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        genesis = next(log.entries())

    assert genesis.seq == 1
    assert genesis.action == "genesis"
    assert genesis.server_id == "keystore-1"
    assert genesis.public_key == bytes(key.verify_key).hex()
    assert genesis.prev_hash == ZERO_HASH


def test_append_chains_entries(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        seqs = [log.append(use_record(f"req-{i}")) for i in range(5)]
        entries = list(log.entries())

    assert seqs == [2, 3, 4, 5, 6]
    for before, after in zip(entries, entries[1:]):
        assert after.prev_hash == before.entry_hash
    for entry in entries:
        assert entry.compute_hash() == entry.entry_hash
    assert entries[1].key_versions == "a1,b1"
    assert entries[1].request_id == "req-0"


def test_append_uses_clock_in_ms(tmp_path, key):
    clock = SettableClock(1_700_000_000.25)
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock) as log:
        seq = log.append(use_record("req-1"))
        entry = next(log.entries(since_seq=seq - 1))

    assert entry.time_ms == 1_700_000_000_250


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"reason": b"raw bytes"}, "reason"),
        ({"workspace": "w" * 129}, "workspace"),
        ({"reason": "line\nbreak"}, "reason"),
        ({"context_hash": "AB" * 32}, "context_hash"),
        ({"outcome": "maybe"}, "outcome"),
        ({"count": 0}, "count"),
        ({"actor": ""}, "actor"),
        ({"action": "Fetch Key"}, "action"),
    ],
)
def test_record_rejects_bad_field(overrides, field):
    with pytest.raises(InvalidInputError) as raised:
        use_record("req-1", **overrides)

    assert field in str(raised.value)


def test_record_rejects_api_key_without_echo():
    pasted = "sk-proj-TESTONLY-aaaa1111bbbb2222cccc"

    with pytest.raises(InvalidInputError) as raised:
        use_record("req-1", reason=f"provider rejected {pasted}")

    assert "API key" in str(raised.value)
    assert pasted not in str(raised.value)
    assert "aaaa1111" not in str(raised.value)


def test_append_rejects_non_record(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        with pytest.raises(InvalidInputError):
            log.append({"actor": WORKER})  # type: ignore[arg-type]


def test_entries_filters(tmp_path, key):
    clock = SettableClock()
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock) as log:
        log.append(use_record("req-1", workspace="ws-0001"))
        clock.advance(10)
        start_ms = int(clock() * 1000)
        log.append(use_record("req-2", workspace="ws-0002", record_id="aa" * 16))
        log.append(use_record("req-3", workspace="ws-0002", actor="spiffe://example.test/worker/gen-2"))
        clock.advance(10)
        log.append(denial())

        assert [e.request_id for e in log.entries(workspace="ws-0002")] == ["req-2", "req-3"]
        assert [e.request_id for e in log.entries(record_id="aa" * 16)] == ["req-2"]
        assert [e.request_id for e in log.entries(actor="spiffe://example.test/worker/gen-2")] == ["req-3"]
        assert [e.outcome for e in log.entries(outcome="denied")] == ["denied"]
        assert [e.request_id for e in log.entries(start_ms=start_ms, end_ms=start_ms + 1, action="FetchKey")] == [
            "req-2",
            "req-3",
        ]
        assert [e.seq for e in log.entries(since_seq=4)] == [5]


def test_checkpoint_signs_current_head(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        log.append(use_record("req-1"))
        head = log.checkpoint()
        last = list(log.entries())[-1]

        assert head.seq == last.seq
        assert head.entry_hash == last.entry_hash
        head.verify(log.public_key)
        assert log.latest_head() == head
        assert log.checkpoints()[-1] == head


def test_signed_head_round_trip_and_tamper(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        head = log.checkpoint()
    other_key = nacl.signing.SigningKey.generate()

    assert SignedHead.from_dict(head.to_dict()) == head
    with pytest.raises(IntegrityError):
        head.verify(bytes(other_key.verify_key).hex())
    forged = SignedHead.from_dict({**head.to_dict(), "seq": head.seq + 1})
    with pytest.raises(IntegrityError):
        forged.verify(log.public_key)
    with pytest.raises(InvalidInputError):
        SignedHead.from_dict({**head.to_dict(), "signature": "zz"})


def test_checkpoint_every_n_entries(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, checkpoint_every=3) as log:
        for i in range(6):
            log.append(use_record(f"req-{i}"))

        assert wait_for(lambda: log.latest_head().seq >= 7)
        assert [h.seq for h in log.checkpoints()] == [1, 4, 7]


def test_checkpoint_after_interval(tmp_path, key):
    clock = SettableClock()
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock, checkpoint_interval_s=60) as log:
        log.append(use_record("req-1"))
        time.sleep(0.3)
        assert log.latest_head().seq == 1

        clock.advance(61)

        assert wait_for(lambda: log.latest_head().seq == 2)


def test_close_signs_final_head(tmp_path, key):
    log = open_log(tmp_path / "audit.sqlite3", "keystore-1", key)
    log.append(use_record("req-1"))
    log.append(use_record("req-2"))
    log.close()
    log.close()

    assert log.checkpoints()[-1].seq == 3
    with pytest.raises(AuditUnavailableError, match="closed"):
        log.append(use_record("req-3"))


def test_reopen_continues_chain(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    with open_log(path, "keystore-1", key) as log:
        log.append(use_record("req-1"))

    with open_log(path, "keystore-1", key) as log:
        seq = log.append(use_record("req-2"))
        report = verify_export(_export(log, tmp_path), public_key_hex=log.public_key)

    assert seq == 3
    assert report.ok, str(report)


def test_reopen_rejects_other_server_or_key(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    open_log(path, "keystore-1", key).close()

    with pytest.raises(ConfigError, match="belongs to server"):
        open_log(path, "secret-1", key)
    with pytest.raises(ConfigError, match="another signing key"):
        open_log(path, "keystore-1", nacl.signing.SigningKey.generate())


def test_denial_flood_folds_into_few_rows(tmp_path, key):
    clock = SettableClock()
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock, denial_window_s=10) as log:
        first = log.append(denial())
        folded = {log.append(denial()) for _ in range(999)}
        clock.advance(11)
        log.append(use_record("req-after"))
        assert wait_for(lambda: len(list(log.entries(outcome="denied"))) == 2)
        denials = list(log.entries(outcome="denied"))

    assert folded == {first}
    assert [d.count for d in denials] == [1, 999]
    assert len(list(log.entries())) <= 4


def test_denials_fold_per_actor_and_reason(tmp_path, key):
    clock = SettableClock()
    other = "spiffe://example.test/worker/gen-2"
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock) as log:
        seqs = [
            log.append(denial("record revoked")),
            log.append(denial("workspace disabled")),
            log.append(denial("record revoked", actor=other)),
        ]

    assert len(set(seqs)) == 3


def test_checkpoint_writes_folded_count(tmp_path, key):
    clock = SettableClock()
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock) as log:
        log.append(denial())
        for _ in range(4):
            log.append(denial())
        head = log.checkpoint()
        denials = list(log.entries(outcome="denied"))

    assert [d.count for d in denials] == [1, 4]
    assert head.seq == denials[-1].seq


def test_denial_after_window_appends_new_entry(tmp_path, key):
    clock = SettableClock()
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key, clock=clock, denial_window_s=5) as log:
        first = log.append(denial())
        clock.advance(6)
        second = log.append(denial())

    assert second > first


def test_witness_records_peer_head(tmp_path, key):
    peer_key = nacl.signing.SigningKey.generate()
    with open_log(tmp_path / "ks.sqlite3", "keystore-1", key) as keystore, \
            open_log(tmp_path / "ss.sqlite3", "secret-1", peer_key) as secret:
        secret.append(use_record("req-1", action="UnwrapShare"))
        peer_head = secret.checkpoint()
        seq = keystore.witness(peer_head, secret.public_key)
        again = keystore.witness(peer_head, secret.public_key)
        entry = next(keystore.entries(since_seq=seq - 1))

    assert again == seq
    assert entry.action == "witness"
    assert (entry.peer_server_id, entry.peer_seq, entry.peer_head_hash) == ("secret-1", 2, peer_head.entry_hash)
    assert entry.peer_signature == peer_head.signature


def test_witness_rejects_bad_signature(tmp_path, key):
    peer_key = nacl.signing.SigningKey.generate()
    with open_log(tmp_path / "ks.sqlite3", "keystore-1", key) as keystore, \
            open_log(tmp_path / "ss.sqlite3", "secret-1", peer_key) as secret:
        head = secret.checkpoint()
        before = len(list(keystore.entries()))

        with pytest.raises(IntegrityError):
            keystore.witness(head, keystore.public_key)
        with pytest.raises(InvalidInputError):
            keystore.witness(keystore.latest_head(), keystore.public_key)

        assert len(list(keystore.entries())) == before


def test_witness_records_fork_evidence(tmp_path, key):
    peer_key = nacl.signing.SigningKey.generate()
    with open_log(tmp_path / "ks.sqlite3", "keystore-1", key) as keystore, \
            open_log(tmp_path / "a.sqlite3", "secret-1", peer_key) as secret, \
            open_log(tmp_path / "b.sqlite3", "secret-1", peer_key) as secret_fork:
        secret.append(use_record("req-1", action="UnwrapShare"))
        secret_fork.append(use_record("req-other", action="UnwrapShare"))
        keystore.witness(secret.checkpoint(), secret.public_key)

        with pytest.raises(IntegrityError, match="fork"):
            keystore.witness(secret_fork.checkpoint(), secret.public_key)

        evidence = list(keystore.entries(action="witness", outcome="error"))
    assert len(evidence) == 1
    assert evidence[0].reason.startswith("fork")


def test_prune_keeps_remainder_verifiable(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        for i in range(5):
            log.append(use_record(f"req-{i}"))
        head = log.checkpoint()
        log.append(use_record("req-late"))

        deleted = log.prune(head.seq)
        remaining = list(log.entries())
        report = verify_export(_export(log, tmp_path), public_key_hex=log.public_key, pinned_head=head)

    assert deleted == head.seq
    assert [e.seq for e in remaining] == [head.seq + 1]
    assert log.anchor() == (head.seq, head.entry_hash)
    assert report.ok, str(report)


def test_prune_only_at_checkpoint(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        log.append(use_record("req-1"))
        log.append(use_record("req-2"))

        with pytest.raises(PreconditionError, match="no checkpoint at seq 2"):
            log.prune(2)
        with pytest.raises(PreconditionError, match="export and verify"):
            log.prune(1, exported_and_verified=False)
        assert len(list(log.entries())) == 3


def test_export_entry_has_fixed_fields(tmp_path, key):
    with open_log(tmp_path / "audit.sqlite3", "keystore-1", key) as log:
        log.append(use_record("req-1"))
        lines = export_lines(log, tmp_path / "export.jsonl")

    entry = lines[2]
    assert set(entry) == set(AuditRecord.__dataclass_fields__) | {
        "type", "seq", "time_ms", "server_id", "public_key", "peer_server_id", "peer_seq",
        "peer_head_hash", "peer_time_ms", "peer_signature", "prev_hash", "entry_hash",
    }


def _export(log, tmp_path):
    return export_file(log, tmp_path / "export.jsonl")
