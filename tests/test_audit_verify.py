"""Offline verification: each kind of tampering fails and names the first bad seq."""

from __future__ import annotations

import nacl.signing
import pytest

from splitkey.audit import SignedHead, verify_export
from splitkey.audit.entry import hash_fields
from tests.test_audit_support import (
    entry_lines,
    export_lines,
    find_entry,
    open_log,
    rechain_from,
    resign_checkpoints,
    use_record,
    write_lines,
)

ENTRIES = 20


@pytest.fixture
def keys():
    return nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()


@pytest.fixture
def pair(tmp_path, keys):
    """A keystore log and a secret log that witnessed each other's heads; both exported."""
    keystore_key, secret_key = keys
    keystore = open_log(tmp_path / "ks.sqlite3", "keystore-1", keystore_key, checkpoint_every=1)
    secret = open_log(tmp_path / "ss.sqlite3", "secret-1", secret_key, checkpoint_every=1)
    for i in range(ENTRIES):
        keystore.append(use_record(f"req-{i}"))
        secret.append(use_record(f"req-{i}", action="UnwrapShare"))
        if i % 5 == 4:
            secret.witness(keystore.checkpoint(), keystore.public_key)
            keystore.witness(secret.checkpoint(), secret.public_key)
    pinned = keystore.checkpoint()
    keystore.close()
    secret.close()
    return {
        "keystore": keystore,
        "secret": secret,
        "pinned": pinned,
        "ks_lines": export_lines(keystore, tmp_path / "ks.jsonl"),
        "ss_path": tmp_path / "ss.jsonl",
        "ss_lines": export_lines(secret, tmp_path / "ss.jsonl"),
    }


def verify_lines(tmp_path, lines, pair, **options):
    path = write_lines(lines, tmp_path / "tampered.jsonl")
    return verify_export(path, public_key_hex=pair["keystore"].public_key, **options)


def test_untampered_pair_verifies(tmp_path, pair):
    report = verify_lines(
        tmp_path, pair["ks_lines"], pair,
        pinned_head=pair["pinned"],
        peer_public_key_hex=pair["secret"].public_key,
        peer_export=pair["ss_path"],
    )

    assert report.ok, str(report)
    assert report.entries_checked == len(entry_lines(pair["ks_lines"]))
    assert report.witnessed_heads_checked == 8


def test_edited_entry_names_its_seq(tmp_path, pair):
    lines = pair["ks_lines"]
    find_entry(lines, 7)["workspace"] = "ws-9999"

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 7
    assert "hash" in report.kinds()


def test_deleted_entry_names_its_seq(tmp_path, pair):
    lines = [line for line in pair["ks_lines"] if not (line["type"] == "entry" and line["seq"] == 7)]

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 7
    assert "sequence" in report.kinds()
    assert "link" in report.kinds()


def test_reordered_entries_name_first_seq(tmp_path, pair):
    lines = pair["ks_lines"]
    first, second = lines.index(find_entry(lines, 7)), lines.index(find_entry(lines, 8))
    lines[first], lines[second] = lines[second], lines[first]

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 7
    assert "sequence" in report.kinds()


def test_truncated_log_with_checkpoints_left(tmp_path, pair):
    lines = [line for line in pair["ks_lines"] if not (line["type"] == "entry" and line["seq"] > 15)]

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 16
    assert "truncated" in report.kinds()


def test_relinked_tail_caught_by_checkpoint(tmp_path, pair):
    # A forger without the key edits entry 7 and recomputes every later hash.
    lines = pair["ks_lines"]
    find_entry(lines, 7)["request_id"] = "req-forged"
    rechain_from(lines, 7)

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 7
    assert "hash" not in report.kinds()
    assert "link" not in report.kinds()
    assert "checkpoint" in report.kinds()


def test_relinked_neighbour_names_first_seq(tmp_path, pair):
    # Entry 7 edited and rehashed, entry 8 re-pointed at it but not rehashed.
    lines = pair["ks_lines"]
    edited = find_entry(lines, 7)
    edited["request_id"] = "req-forged"
    edited["entry_hash"] = hash_fields(edited)
    find_entry(lines, 8)["prev_hash"] = edited["entry_hash"]

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 7
    assert [p.seq for p in report.problems if p.kind == "hash"] == [8]
    assert [p.seq for p in report.problems if p.kind == "checkpoint"] == [7]


def test_self_rewrite_caught_by_peer_witness(tmp_path, pair, keys):
    keystore_key, _ = keys
    lines = pair["ks_lines"]
    find_entry(lines, 7)["request_id"] = "req-forged"
    rechain_from(lines, 7)
    resign_checkpoints(lines, keystore_key)

    alone = verify_lines(tmp_path, lines, pair)
    with_peer = verify_lines(
        tmp_path, lines, pair, peer_public_key_hex=pair["secret"].public_key, peer_export=pair["ss_path"]
    )

    witnessed = [e for e in entry_lines(pair["ss_lines"]) if e["action"] == "witness"]
    first_witnessed_after_edit = min(e["peer_seq"] for e in witnessed if e["peer_seq"] >= 7)
    assert alone.ok, str(alone)
    assert not with_peer.ok
    assert "fork" in with_peer.kinds()
    assert with_peer.first_bad_seq == first_witnessed_after_edit


def test_pinned_head_catches_truncation(tmp_path, pair):
    lines = pair["ks_lines"]
    last_kept = pair["pinned"].seq - 4
    lines = [
        line for line in lines
        if not (line["type"] in ("entry", "checkpoint") and line["seq"] > last_kept)
    ]

    alone = verify_lines(tmp_path, lines, pair)
    pinned = verify_lines(tmp_path, lines, pair, pinned_head=pair["pinned"])

    assert alone.ok, str(alone)
    assert pinned.first_bad_seq == last_kept + 1
    assert "truncated" in pinned.kinds()


def test_pinned_head_catches_fork(tmp_path, pair, keys):
    keystore_key, _ = keys
    lines = pair["ks_lines"]
    find_entry(lines, pair["pinned"].seq)["reason"] = "forked history"
    rechain_from(lines, pair["pinned"].seq)
    resign_checkpoints(lines, keystore_key)

    report = verify_lines(tmp_path, lines, pair, pinned_head=pair["pinned"])

    assert report.first_bad_seq == pair["pinned"].seq
    assert report.kinds() == {"fork"}


def test_pinned_head_with_bad_signature(tmp_path, pair):
    forged = SignedHead.from_dict({**pair["pinned"].to_dict(), "entry_hash": "00" * 32})

    report = verify_lines(tmp_path, pair["ks_lines"], pair, pinned_head=forged)

    assert report.kinds() == {"pinned"}


def test_forged_checkpoint_signature(tmp_path, pair):
    lines = pair["ks_lines"]
    checkpoint = next(line for line in lines if line["type"] == "checkpoint" and line["seq"] == 9)
    checkpoint["signature"] = "00" * 64

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 9
    assert report.kinds() == {"signature"}


def test_log_regenerated_with_other_key(tmp_path, pair):
    intruder = nacl.signing.SigningKey.generate()
    lines = pair["ks_lines"]
    genesis = find_entry(lines, 1)
    genesis["public_key"] = bytes(intruder.verify_key).hex()
    rechain_from(lines, 1)
    resign_checkpoints(lines, intruder)

    report = verify_lines(tmp_path, lines, pair)

    assert report.first_bad_seq == 1
    assert {"genesis", "signature"} <= report.kinds()


def test_peer_rewrite_caught_through_own_witness(tmp_path, pair, keys):
    _, secret_key = keys
    peer_lines = pair["ss_lines"]
    find_entry(peer_lines, 3)["request_id"] = "req-forged"
    rechain_from(peer_lines, 3)
    resign_checkpoints(peer_lines, secret_key)
    peer_path = write_lines(peer_lines, tmp_path / "ss-rewritten.jsonl")

    report = verify_lines(
        tmp_path, pair["ks_lines"], pair, peer_public_key_hex=pair["secret"].public_key, peer_export=peer_path
    )

    peer_problems = [p for p in report.problems if p.server_id == "secret-1"]
    assert peer_problems
    assert {p.kind for p in peer_problems} == {"peer-fork"}
    assert report.first_bad_seq is None


def test_forged_witness_signature(tmp_path, pair, keys):
    keystore_key, _ = keys
    lines = pair["ks_lines"]
    witness = next(e for e in entry_lines(lines) if e["action"] == "witness")
    witness["peer_signature"] = "11" * 64
    rechain_from(lines, witness["seq"])
    resign_checkpoints(lines, keystore_key)

    report = verify_lines(tmp_path, lines, pair, peer_public_key_hex=pair["secret"].public_key)

    assert report.first_bad_seq == witness["seq"]
    assert report.kinds() == {"witness"}


def test_malformed_line_reported(tmp_path, pair):
    path = write_lines(pair["ks_lines"], tmp_path / "export.jsonl")
    with path.open("a") as stream:
        stream.write('{"type": "entry", "seq": "not a number"}\n')

    report = verify_export(path, public_key_hex=pair["keystore"].public_key)

    assert report.kinds() == {"malformed"}
    assert "line" in report.problems[0].message
