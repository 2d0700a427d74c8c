"""Offline verification of an exported audit log.

Checks, each reported as a Problem naming the first bad sequence number:

- every entry's hash matches its content (an edit is caught at that entry);
- every `prev_hash` matches the entry before it, starting at the anchor;
- sequence numbers run without gaps, duplicates or reordering;
- the genesis entry names this server and its public key;
- every checkpoint is signed by the log's key and matches the entry it names.
  A tail re-chained without the key is caught at the first checkpoint after
  the change, so checkpoint spacing bounds how exactly the change is located;
- a head the auditor pinned earlier is still in the log (else truncation or fork);
- the heads of this log that the other server witnessed are still in the log.
  This is what catches a server that rewrote and re-signed its own history;
- the other server's heads witnessed in this log are validly signed and, given
  that server's export or heads, match its history.

Verify the other server's export with its own call: its problems belong to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from splitkey.audit.entry import GENESIS_ACTION, WITNESS_ACTION, ZERO_HASH, AuditEntry
from splitkey.audit.export import ExportedLog, load_export
from splitkey.audit.head import SignedHead
from splitkey.errors import IntegrityError

ExportSource = Path | str | TextIO | ExportedLog


@dataclass(frozen=True)
class Problem:
    """One failed check. `seq` is the first bad seq in `server_id`'s log, or None for a malformed line."""

    kind: str
    server_id: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "export"
        return f"{self.server_id} {where}: {self.kind}: {self.message}"


@dataclass
class VerificationReport:
    """Outcome of `verify_export`: what was checked and every problem found."""

    server_id: str
    public_key: str
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    entries_checked: int = 0
    checkpoints_checked: int = 0
    witnessed_heads_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest seq of this log named by a problem, or None."""
        seqs = [p.seq for p in self.problems if p.seq is not None and p.server_id == self.server_id]
        return min(seqs) if seqs else None

    def kinds(self) -> set[str]:
        """Return the kinds of the problems found."""
        return {p.kind for p in self.problems}

    def __str__(self) -> str:
        if self.ok:
            return (
                f"{self.server_id}: OK, entries {self.first_seq}..{self.last_seq}, "
                f"{self.checkpoints_checked} checkpoints, {self.witnessed_heads_checked} witnessed heads"
            )
        lines = [f"{self.server_id}: {len(self.problems)} problems, first bad seq {self.first_bad_seq}"]
        lines.extend(f"  {problem}" for problem in sorted(self.problems, key=_problem_order))
        return "\n".join(lines)


def verify_export(
    source: ExportSource,
    *,
    public_key_hex: str | None = None,
    pinned_head: SignedHead | None = None,
    peer_public_key_hex: str | None = None,
    peer_export: ExportSource | None = None,
    peer_heads: Iterable[SignedHead] = (),
) -> VerificationReport:
    """Verify an exported log and return a report of every problem found.

    `public_key_hex` is the log's key as the auditor pinned it. Without it,
    the key named by the genesis entry or header is trusted, so a log
    regenerated under another key is caught only through the other server. `pinned_head` is a
    head of this log verified earlier. `peer_export` and `peer_heads` come from
    the other server, whose key is `peer_public_key_hex`.
    """
    exported = load_export(source)
    key = public_key_hex or _genesis_key(exported) or exported.public_key
    checker = _Checker(exported, key)
    checker.check_parse_errors()
    checker.check_chain(public_key_hex)
    checker.check_checkpoints()
    if pinned_head is not None:
        checker.check_pinned(pinned_head)
    peer = load_export(peer_export) if peer_export is not None else None
    if peer is not None:
        checker.check_heads_witnessed_by(peer)
    if peer_public_key_hex is not None:
        checker.check_witnessed_peer_heads(peer_public_key_hex, peer, list(peer_heads))
    checker.report.problems.sort(key=_problem_order)
    return checker.report


class _Checker:
    def __init__(self, exported: ExportedLog, key: str) -> None:
        self.exported = exported
        self.key = key
        self.server_id = exported.server_id or (exported.entries[0].server_id if exported.entries else "")
        self.by_seq: dict[int, AuditEntry] = {}
        self.report = VerificationReport(server_id=self.server_id, public_key=key)

    def problem(self, kind: str, seq: int | None, message: str, server_id: str | None = None) -> None:
        self.report.problems.append(Problem(kind, server_id or self.server_id, seq, message))

    def check_parse_errors(self) -> None:
        for line, message in self.exported.parse_errors:
            self.problem("malformed", None, f"line {line}: {message}")

    def check_chain(self, pinned_key: str | None) -> None:
        exported = self.exported
        if pinned_key is not None and exported.public_key and exported.public_key != pinned_key:
            self.problem("public-key", None, "the export header names another public key than the pinned one")
        expected_seq = exported.anchor_seq + 1
        prev_hash = exported.anchor_hash
        for entry in exported.entries:
            seq = entry.seq
            if seq != expected_seq:
                self.problem(
                    "sequence", min(seq, expected_seq),
                    f"expected entry {expected_seq}, found {seq}: entries are missing, duplicated or reordered",
                )
            if entry.server_id != self.server_id:
                self.problem("server-id", seq, f"entry names server {entry.server_id!r}")
            if entry.compute_hash() != entry.entry_hash:
                self.problem("hash", seq, "the entry's content does not match its hash: it was edited")
            if entry.prev_hash != prev_hash:
                self.problem(
                    "link", seq,
                    "prev_hash does not match the hash of the entry before it: "
                    "an entry was removed, inserted or re-linked here",
                )
            self._check_genesis(entry)
            self.by_seq.setdefault(seq, entry)
            prev_hash = entry.entry_hash
            expected_seq = seq + 1
        if exported.entries:
            self.report.first_seq = exported.entries[0].seq
            self.report.last_seq = exported.entries[-1].seq
            self.report.last_hash = exported.entries[-1].entry_hash
        self.report.entries_checked = len(exported.entries)

    def _check_genesis(self, entry: AuditEntry) -> None:
        if entry.seq == 1 and entry.action != GENESIS_ACTION:
            self.problem("genesis", 1, f"entry 1 is a {entry.action!r} entry, not the genesis entry")
        if entry.action != GENESIS_ACTION:
            return
        if entry.public_key != self.key:
            self.problem("genesis", entry.seq, "the genesis entry names another public key")
        if entry.seq == 1 and entry.prev_hash != ZERO_HASH:
            self.problem("genesis", 1, "the genesis entry does not start from the zero hash")

    def check_checkpoints(self) -> None:
        exported = self.exported
        anchor_signed = exported.anchor_seq == 0
        for head in exported.checkpoints:
            self.report.checkpoints_checked += 1
            if head.server_id != self.server_id:
                self.problem("checkpoint", head.seq, f"checkpoint names server {head.server_id!r}")
            try:
                head.verify(self.key)
            except IntegrityError:
                self.problem("signature", head.seq, "the checkpoint's signature is invalid under the log's key")
                continue
            if head.seq == exported.anchor_seq and head.entry_hash == exported.anchor_hash:
                anchor_signed = True
            self._check_head_present(head, "checkpoint", "the signed checkpoint")
        if not anchor_signed:
            self.problem(
                "anchor", exported.anchor_seq + 1,
                f"the log starts after seq {exported.anchor_seq}, but no signed checkpoint covers that "
                "anchor: earlier entries were lost (file deleted or replaced) or the anchor was forged",
            )

    def check_pinned(self, pinned: SignedHead) -> None:
        if pinned.server_id != self.server_id:
            self.problem("pinned", None, f"the pinned head belongs to {pinned.server_id!r}")
            return
        try:
            pinned.verify(self.key)
        except IntegrityError:
            self.problem("pinned", pinned.seq, "the pinned head's signature is invalid under the log's key")
            return
        self._check_head_present(pinned, "fork", "the pinned head")

    def check_heads_witnessed_by(self, peer: ExportedLog) -> None:
        """Check the heads of this log that the other server appended to its own chain."""
        for peer_entry in peer.entries:
            if peer_entry.action != WITNESS_ACTION or peer_entry.peer_server_id != self.server_id:
                continue
            head = _head_of_witness(peer_entry)
            self.report.witnessed_heads_checked += 1
            try:
                head.verify(self.key)
            except IntegrityError:
                self.problem(
                    "peer-witness", peer_entry.seq,
                    f"witness entry holds a head of {self.server_id} with an invalid signature",
                    server_id=peer_entry.server_id,
                )
                continue
            self._check_head_present(
                head, "fork", f"the head that {peer_entry.server_id} witnessed in its entry {peer_entry.seq}"
            )

    def check_witnessed_peer_heads(
        self, peer_key: str, peer: ExportedLog | None, peer_heads: list[SignedHead]
    ) -> None:
        """Check the other server's heads that this log witnessed."""
        peer_entries = {e.seq: e for e in peer.entries} if peer is not None else {}
        peer_last = max(peer_entries) if peer_entries else None
        for entry in self.exported.entries:
            if entry.action != WITNESS_ACTION:
                continue
            head = _head_of_witness(entry)
            self.report.witnessed_heads_checked += 1
            try:
                head.verify(peer_key)
            except IntegrityError:
                self.problem("witness", entry.seq, f"the witnessed head of {head.server_id} has an invalid signature")
                continue
            known = [h for h in peer_heads if h.server_id == head.server_id and h.seq == head.seq]
            if any(h.entry_hash != head.entry_hash for h in known):
                self.problem(
                    "peer-fork", head.seq,
                    f"{head.server_id} signed two hashes for seq {head.seq}; this log witnessed one in entry {entry.seq}",
                    server_id=head.server_id,
                )
            if peer is None or head.server_id != peer.server_id:
                continue
            peer_entry = peer_entries.get(head.seq)
            if peer_entry is not None and peer_entry.entry_hash != head.entry_hash:
                self.problem(
                    "peer-fork", head.seq,
                    f"the export of {head.server_id} differs from the head witnessed in entry {entry.seq}",
                    server_id=head.server_id,
                )
            elif peer_entry is None and peer_last is not None and head.seq > peer_last:
                self.problem(
                    "peer-truncated", peer_last + 1,
                    f"the export of {head.server_id} ends at seq {peer_last}, before the head "
                    f"witnessed in entry {entry.seq} (seq {head.seq})",
                    server_id=head.server_id,
                )

    def _check_head_present(self, head: SignedHead, mismatch_kind: str, what: str) -> None:
        """Report when the log does not hold entry `head.seq` with `head.entry_hash`."""
        exported = self.exported
        entry = self.by_seq.get(head.seq)
        if entry is not None:
            if entry.entry_hash != head.entry_hash:
                self.problem(
                    mismatch_kind, head.seq,
                    f"entry {head.seq} differs from {what}: history was rewritten or forked at or before it",
                )
            return
        if head.seq == exported.anchor_seq:
            if head.entry_hash != exported.anchor_hash:
                self.problem(mismatch_kind, head.seq, f"the anchor differs from {what}")
            return
        last_seq = self.report.last_seq if self.report.last_seq is not None else exported.anchor_seq
        if head.seq > last_seq:
            self.problem(
                "truncated", last_seq + 1,
                f"the log ends at seq {last_seq}, but {what} is at seq {head.seq}: the log was truncated",
            )
        # A head before the anchor names pruned entries and cannot be checked;
        # a head inside a gap is already reported as a sequence problem.


def _head_of_witness(entry: AuditEntry) -> SignedHead:
    return SignedHead(
        entry.peer_server_id, entry.peer_seq, entry.peer_head_hash, entry.peer_time_ms, entry.peer_signature
    )


def _genesis_key(exported: ExportedLog) -> str:
    for entry in exported.entries:
        if entry.action == GENESIS_ACTION and entry.public_key:
            return entry.public_key
    return ""


def _problem_order(problem: Problem) -> tuple[int, int]:
    return (0 if problem.seq is None else 1, problem.seq or 0)
