"""The append-only, hash-chained, signed audit log of one server.

Durability: `append` returns only after the entry's transaction is fsynced
(SQLite WAL, `synchronous=FULL`), so a server may release a share once
`append` has returned. Folded denials are the exception: a denial folded into
an open window is only counted in memory until the window's entry is written.

Failure: `append` raises AuditUnavailableError when the write fails (OSError
such as ENOSPC or EIO, or any SQLite error), when it does not finish within
`timeout_s`, or when the file was deleted or replaced during the write. The
caller must then fail the request and release nothing. The log keeps the
record and writes a late entry for it once writes work again (see
`failed_closed`). A write that times out while it runs is abandoned and may
still commit. It gets a late entry only if it fails after all, so a call never
has both its own entry and a late one.

Deleted or replaced file: before every write the log compares the inode of
the file at `path` (and of its `-wal` file) with the one it opened. When the
file is gone, or an empty file is in its place, the log starts a new file at
`path`. Its first entry is a genesis entry that continues the sequence numbers
and whose `prev_hash` is the hash of the previous head, so the new file links
to the lost one. When another non-empty file is in its place, the log fails
closed until an operator moves that file away. A write during which the file
was swapped out raises AuditUnavailableError even though it committed, because
the entry is not in the file at `path`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from splitkey.audit.entry import GENESIS_ACTION, PRUNE_ACTION, WITNESS_ACTION, ZERO_HASH, AuditEntry, hash_fields
from splitkey.audit.failed_closed import FailedClosedCalls, dropped_calls_draft
from splitkey.audit.folding import DenialFolder
from splitkey.audit.head import SignedHead, public_key_hex, sign_head
from splitkey.audit.record import AuditRecord
from splitkey.audit.store import (
    LogFile,
    entry_from_row,
    head_from_row,
    is_new_file,
    open_reader,
    read_meta,
)
from splitkey.audit.writer import AbandonedJobError, WriterThread
from splitkey.errors import (
    AuditUnavailableError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    PreconditionError,
)

logger = logging.getLogger(__name__)

_SYSTEM_DEFAULTS: dict[str, str | int] = {
    "actor": "",
    "cert_fingerprint": "",
    "workspace": "",
    "provider": "",
    "record_id": "",
    "key_versions": "",
    "request_id": "",
    "context_hash": "",
    "job_id": "",
    "outcome": "allowed",
    "reason": "",
    "count": 1,
    "public_key": "",
    "peer_server_id": "",
    "peer_seq": 0,
    "peer_head_hash": "",
    "peer_time_ms": 0,
    "peer_signature": "",
}

_QUERY_COLUMNS = ("workspace", "record_id", "actor", "action", "outcome")


@dataclass(frozen=True)
class PruneResult:
    """Outcome of `AuditLog.prune_to_checkpoint`.

    `prune_seq` is the seq of the "prune" entry that records the deletion, or
    0 when nothing was deleted because the log already started after the checkpoint.
    """

    deleted: int
    anchor_seq: int
    anchor_hash: str
    prune_seq: int


class AuditLog:
    """The audit log of one server, in its own SQLite file at `path`.

    All writes run on one writer thread; reads use their own connections and
    never wait for it. `clock` returns Unix time in seconds.
    """

    def __init__(
        self,
        path: Path,
        *,
        server_id: str,
        signing_key: nacl.signing.SigningKey,
        timeout_s: float = 2.0,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
        denial_window_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not server_id or len(server_id) > 128:
            raise ConfigError("audit server_id must be 1 to 128 characters")
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise ConfigError("audit signing_key must be a nacl.signing.SigningKey")
        for name, value in (
            ("timeout_s", timeout_s),
            ("checkpoint_interval_s", checkpoint_interval_s),
            ("denial_window_s", denial_window_s),
        ):
            if not value > 0:
                raise ConfigError(f"audit {name} must be a positive number of seconds, not {value}")
        if checkpoint_every < 1:
            raise ConfigError(f"audit checkpoint_every must be at least 1, not {checkpoint_every}")

        self._path = Path(path)
        self._server_id = server_id
        self._signing_key = signing_key
        self._public_key = public_key_hex(signing_key)
        self._timeout_s = timeout_s
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._folder = DenialFolder(denial_window_s)
        self._failed_closed = FailedClosedCalls()

        # Owned by the writer thread once it runs.
        self._file: LogFile | None = None
        self._head: tuple[int, str] = (0, ZERO_HASH)
        self._latest_head: SignedHead | None = None
        self._entries_since_checkpoint = 0
        self._last_checkpoint_s = clock()
        self._closed = False

        try:
            self._ensure_file(at_start=True)
        except (OSError, sqlite3.Error) as error:
            raise AuditUnavailableError(f"audit log {self._path} could not be opened: {error}") from error
        self._writer = WriterThread(
            f"audit-writer-{server_id}",
            timeout_s=timeout_s,
            housekeeping=self._housekeeping,
            idle_wait=self._idle_wait,
        )

    @property
    def path(self) -> Path:
        """Path of the SQLite file."""
        return self._path

    @property
    def server_id(self) -> str:
        """Name of the server whose log this is."""
        return self._server_id

    @property
    def public_key(self) -> str:
        """Hex Ed25519 public key that verifies this log's signed heads."""
        return self._public_key

    # Writes -------------------------------------------------------------

    def append(self, record: AuditRecord) -> int:
        """Append `record` durably and return its sequence number.

        A denial folded into an open window returns the seq of the window's
        first entry; its count is written when the window closes.
        Raises AuditUnavailableError when the entry cannot be written in time.
        The caller then fails the call, and the writer appends a late entry
        for it (outcome "error", see `failed_closed`) once writes work again.
        When the write timed out while running and commits afterwards, its
        entry stays and no late entry is written.
        """
        if not isinstance(record, AuditRecord):
            raise InvalidInputError(f"append takes an AuditRecord, not {type(record).__name__}")

        def on_abandoned_end(seq: object, error: BaseException | None) -> None:
            self._end_abandoned_append(record, seq, error)

        try:
            return self._writer.submit(lambda: self._append_now(record), "append", on_abandoned_end=on_abandoned_end)
        except AbandonedJobError:
            # The write still runs; on_abandoned_end keeps the late record if it fails.
            raise
        except AuditUnavailableError as error:
            self._failed_closed.note(record, error)
            raise

    def checkpoint(self) -> SignedHead:
        """Write folded denials, then sign and store the head; return it."""
        return self._writer.submit(self._checkpoint_now, "checkpoint")

    def witness(self, peer: SignedHead, peer_public_key_hex: str) -> int:
        """Append the other server's signed head to this chain; return the entry's seq.

        Raises IntegrityError when the signature is invalid. Also raises it when
        the head conflicts with one witnessed before (same seq with another
        hash, or a lower seq). Such a head is evidence of a fork or rollback,
        so it is recorded as an entry with outcome "error" first.
        """
        if not isinstance(peer, SignedHead):
            raise InvalidInputError(f"witness takes a SignedHead, not {type(peer).__name__}")
        if peer.server_id == self._server_id:
            raise InvalidInputError(f"witness takes the other server's head, not this log's ({peer.server_id})")
        peer.verify(peer_public_key_hex)
        return self._writer.submit(lambda: self._witness_now(peer), "witness")

    def prune(self, up_to_checkpoint_seq: int, exported_and_verified: bool = True) -> int:
        """Delete entries up to a checkpoint and return how many were deleted.

        The checkpoint's hash becomes the anchor that the remaining entries
        link to, and its signed head stays in the file. Pass
        `exported_and_verified=True` only after the entries were exported and
        that export passed `verify_export`.
        """
        if not exported_and_verified:
            raise PreconditionError("prune deletes entries; export and verify them first")
        return self._writer.submit(lambda: self._prune_now(up_to_checkpoint_seq), "prune")

    def prune_to_checkpoint(
        self,
        checkpoint: SignedHead,
        *,
        export_anchor: tuple[int, str],
        actor: str = "",
        cert_fingerprint: str = "",
    ) -> PruneResult:
        """Delete the entries up to `checkpoint`, the newest checkpoint of an export that passed verification.

        The checkpoint must be stored in this log as given (seq, hash, time and
        signature) and its signature must verify under this log's key.
        `export_anchor` is the (seq, hash) the export started after, and it
        must equal the log's current anchor, so every deleted entry was in the
        export. A "prune" entry naming `actor` is written in the same
        transaction as the deletion. A checkpoint the log already starts after
        deletes nothing and returns a result with `prune_seq` 0.

        Raises InvalidInputError for another server's checkpoint, IntegrityError
        for an invalid signature, PreconditionError when the checkpoint or the
        anchor does not match this log, and AuditUnavailableError when the
        write fails or times out.
        """
        if not isinstance(checkpoint, SignedHead):
            raise InvalidInputError(f"prune_to_checkpoint takes a SignedHead, not {type(checkpoint).__name__}")
        if checkpoint.server_id != self._server_id:
            raise InvalidInputError(
                f"the checkpoint belongs to server {checkpoint.server_id!r}, but this log is {self._server_id!r}; "
                "prune with an export of this server's log"
            )
        checkpoint.verify(self._public_key)
        # NOTE: the deletion is one transaction on the writer thread, so appends
        # wait for it. A prune that takes longer than `timeout_s` fails its
        # caller and the appends behind it, and may still commit afterwards.
        return self._writer.submit(
            lambda: self._prune_to_checkpoint_now(checkpoint, export_anchor, actor, cert_fingerprint), "prune"
        )

    def close(self) -> None:
        """Write folded denials, sign the final head and close the file. A second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._writer.stop(self._close_now, self._timeout_s)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()

    # Reads --------------------------------------------------------------

    def latest_head(self) -> SignedHead:
        """Return the newest signed head; there is one from the moment the log opens."""
        head = self._latest_head
        assert head is not None  # Set in __init__ by the genesis checkpoint or the file.
        return head

    def entries(
        self,
        since_seq: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        workspace: str | None = None,
        record_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Yield entries in seq order that match every filter given.

        `since_seq` is exclusive; `start_ms` is inclusive and `end_ms`
        exclusive (Unix milliseconds).
        """
        clauses: list[str] = []
        params: list[object] = []
        for column, operator, value in (
            ("seq", ">", since_seq),
            ("time_ms", ">=", start_ms),
            ("time_ms", "<", end_ms),
        ):
            if value is not None:
                clauses.append(f"{column} {operator} ?")
                params.append(value)
        filters = dict(zip(_QUERY_COLUMNS, (workspace, record_id, actor, action, outcome)))
        for column, value in filters.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        yield from self._read_rows(f"SELECT * FROM entries {where} ORDER BY seq", params, entry_from_row)

    def checkpoints(self) -> list[SignedHead]:
        """Return every stored signed head, oldest first."""
        return list(self._read_rows("SELECT * FROM checkpoints ORDER BY seq", [], head_from_row))

    def anchor(self) -> tuple[int, str]:
        """Return (seq, hash) of the entry before the first one in the file."""
        rows = dict(self._read_rows("SELECT name, value FROM meta", [], tuple))
        return (int(rows["anchor_seq"]), rows["anchor_hash"])

    def _read_rows(self, sql: str, params: list[object], convert: Callable) -> Iterator:
        try:
            connection = open_reader(self._path)
        except sqlite3.Error as error:
            raise AuditUnavailableError(f"audit log {self._path} could not be read: {error}") from error
        try:
            cursor = connection.execute(sql, params)
            while rows := cursor.fetchmany(500):
                for row in rows:
                    yield convert(row)
        except sqlite3.Error as error:
            raise AuditUnavailableError(f"audit log {self._path} could not be read: {error}") from error
        finally:
            connection.close()

    # Writer thread ------------------------------------------------------

    def _write_rows(self, log_file: LogFile, entries: list[AuditEntry], heads: list[SignedHead]) -> None:
        """Write rows in one transaction. The only place a write reaches the disk.

        Tests override this method to simulate a full, failing or hanging disk.
        """
        log_file.insert(entries, heads)

    def _append_now(self, record: AuditRecord) -> int:
        now_s = self._clock()
        if record.outcome == "denied":
            folded_into = self._folder.fold(record, now_s)
            if folded_into is not None:
                return folded_into
        entry = self._commit([_draft_from_record(record)])[0]
        if record.outcome == "denied":
            self._folder.open_window(record, now_s, entry.seq)
        return entry.seq

    def _checkpoint_now(self) -> SignedHead:
        folded = self._folder.take_all()
        if not folded and self._latest_head is not None and self._latest_head.seq == self._head[0]:
            return self._latest_head
        try:
            self._commit([_draft_from_record(r) for r in folded], sign=True)
        except AuditUnavailableError:
            self._folder.put_back(folded)
            raise
        assert self._latest_head is not None
        return self._latest_head

    def _witness_now(self, peer: SignedHead) -> int:
        log_file = self._writable_file()
        previous = log_file.connection.execute(
            "SELECT seq, peer_seq, peer_head_hash FROM entries WHERE action = ? AND peer_server_id = ? "
            "AND outcome = 'allowed' ORDER BY seq DESC LIMIT 1",
            (WITNESS_ACTION, peer.server_id),
        ).fetchone()
        conflict = ""
        if previous is not None:
            witness_seq, previous_seq, previous_hash = previous
            if peer.seq == previous_seq and peer.entry_hash == previous_hash:
                return witness_seq
            if peer.seq == previous_seq:
                conflict = f"fork: a second head for seq {peer.seq}"
            elif peer.seq < previous_seq:
                conflict = f"rollback: head seq {peer.seq} is older than witnessed seq {previous_seq}"
        draft = {
            "action": WITNESS_ACTION,
            "outcome": "error" if conflict else "allowed",
            "reason": conflict,
            "peer_server_id": peer.server_id,
            "peer_seq": peer.seq,
            "peer_head_hash": peer.entry_hash,
            "peer_time_ms": peer.time_ms,
            "peer_signature": peer.signature,
        }
        entry = self._commit([draft])[0]
        if conflict:
            logger.error("audit head of %s conflicts with a witnessed head: %s", peer.server_id, conflict)
            raise IntegrityError(f"audit head of {peer.server_id} conflicts with a witnessed head ({conflict})")
        return entry.seq

    def _prune_now(self, up_to_seq: int) -> int:
        log_file = self._writable_file()
        row = log_file.connection.execute(
            "SELECT entry_hash FROM checkpoints WHERE seq = ?", (up_to_seq,)
        ).fetchone()
        if row is None:
            raise PreconditionError(f"no checkpoint at seq {up_to_seq}; prune only up to a checkpoint")
        try:
            deleted = log_file.prune(up_to_seq, row[0])
        except (OSError, sqlite3.Error) as error:
            self._discard_file()
            raise AuditUnavailableError(f"audit log {self._path} could not be pruned: {error}") from error
        logger.info("audit log %s pruned %d entries up to seq %d", self._path, deleted, up_to_seq)
        return deleted

    def _prune_to_checkpoint_now(
        self, checkpoint: SignedHead, export_anchor: tuple[int, str], actor: str, cert_fingerprint: str
    ) -> PruneResult:
        log_file = self._writable_file()
        connection = log_file.connection
        meta = read_meta(connection)
        anchor_seq, anchor_hash = int(meta["anchor_seq"]), meta["anchor_hash"]
        seq = checkpoint.seq
        if seq < anchor_seq:
            raise PreconditionError(
                f"the log already starts after seq {anchor_seq}, past checkpoint seq {seq}; nothing is left to prune"
            )
        stored = connection.execute(
            "SELECT entry_hash, time_ms, signature FROM checkpoints WHERE seq = ?", (seq,)
        ).fetchone()
        if stored is None or tuple(stored) != (checkpoint.entry_hash, checkpoint.time_ms, checkpoint.signature):
            raise PreconditionError(
                f"checkpoint seq {seq} with hash {checkpoint.entry_hash} is not in this log; "
                "export and verify this server's log again, then prune with that export"
            )
        if seq == anchor_seq:
            return PruneResult(0, anchor_seq, anchor_hash, 0)
        if tuple(export_anchor) != (anchor_seq, anchor_hash):
            raise PreconditionError(
                f"the export starts after seq {export_anchor[0]}, but this log starts after seq {anchor_seq} "
                f"(or the anchor hashes differ); export the whole log again so that every entry to delete is in it"
            )
        row = connection.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is None or row[0] != checkpoint.entry_hash:
            # A stored checkpoint that disagrees with its entry means the file was edited.
            logger.error("audit log %s: entry %d does not match its stored checkpoint; prune rejected", self._path, seq)
            raise IntegrityError()
        first_seq = connection.execute("SELECT MIN(seq) FROM entries").fetchone()[0]
        draft = {
            "action": PRUNE_ACTION,
            "actor": actor,
            "cert_fingerprint": cert_fingerprint,
            "reason": (
                f"deleted entries {first_seq}..{seq} up to the exported and verified checkpoint seq {seq} "
                f"hash {checkpoint.entry_hash}"
            ),
        }

        now_s = self._clock()
        try:
            entries = self._chain([draft], now_s)
            deleted = log_file.prune(seq, checkpoint.entry_hash, entries)
        except (OSError, sqlite3.Error) as error:
            self._discard_file()
            logger.error("audit log %s prune failed: %s", self._path, error)
            raise AuditUnavailableError(f"audit log {self._path} could not be pruned: {error}") from error
        self._settle_write(log_file, entries, [], now_s)
        logger.info(
            "audit log %s pruned %d entries up to checkpoint seq %d for %s; prune entry %d",
            self._path, deleted, seq, actor or "the operator", entries[0].seq,
        )
        return PruneResult(deleted, seq, checkpoint.entry_hash, entries[0].seq)

    def _close_now(self) -> None:
        try:
            try:
                self._write_failed_closed()
            except AuditUnavailableError as error:
                logger.error("audit log %s: late entries of calls that failed closed are lost: %s",
                             self._path, error)
            self._checkpoint_now()
        finally:
            self._discard_file()

    def _end_abandoned_append(self, record: AuditRecord, seq: object, error: BaseException | None) -> None:
        """Keep the late record of an append whose caller gave up, unless its entry committed after all."""
        if error is not None:
            self._failed_closed.note(record, AuditUnavailableError(f"audit append timed out, then failed: {error}"))
            return
        logger.warning(
            "audit log %s: entry %s (%s, outcome %s, request %s) committed after its caller gave up "
            "at the audit timeout; the call failed closed and released nothing",
            self._path, seq, record.action, record.outcome, record.request_id or "-",
        )

    def _write_failed_closed(self) -> None:
        """Append the late entries of calls whose own append failed, now that writing may work."""
        records, dropped = self._failed_closed.take_all()
        if not records and not dropped:
            return
        drafts = [_draft_from_record(record) for record in records]
        if dropped:
            drafts.append(dropped_calls_draft(dropped))
        try:
            entries = self._commit(drafts)
        except AuditUnavailableError:
            self._failed_closed.put_back(records, dropped)
            raise
        logger.info("audit log %s: wrote late entries %d..%d for %d calls that failed closed",
                    self._path, entries[0].seq, entries[-1].seq, len(records) + dropped)

    def _housekeeping(self) -> None:
        self._write_failed_closed()
        now_s = self._clock()
        due = self._folder.take_due(now_s)
        if due:
            try:
                self._commit([_draft_from_record(r) for r in due])
            except AuditUnavailableError:
                self._folder.put_back(due)
                raise
        if self._entries_since_checkpoint and (
            self._entries_since_checkpoint >= self._checkpoint_every
            or now_s - self._last_checkpoint_s >= self._checkpoint_interval_s
        ):
            self._checkpoint_now()

    def _idle_wait(self) -> float:
        deadlines = [self._folder.next_close_s()]
        if self._entries_since_checkpoint:
            deadlines.append(self._last_checkpoint_s + self._checkpoint_interval_s)
        pending = [d for d in deadlines if d is not None]
        if not pending:
            return 1.0
        # Poll at least every second, because `clock` may not be wall time.
        return min(max(min(pending) - self._clock(), 0.05), 1.0)

    def _commit(self, drafts: list[dict[str, str | int]], *, sign: bool = False) -> list[AuditEntry]:
        """Chain drafts onto the head, write them (and a signed head if `sign`), and return them."""
        now_s = self._clock()
        try:
            log_file = self._ensure_file()
            entries = self._chain(drafts, now_s)
            last_seq, last_hash = (entries[-1].seq, entries[-1].entry_hash) if entries else self._head
            heads = [sign_head(self._signing_key, self._server_id, last_seq, last_hash, _ms(now_s))] if sign else []
            self._write_rows(log_file, entries, heads)
        except (OSError, sqlite3.Error) as error:
            self._discard_file()
            logger.error("audit log %s write failed: %s", self._path, error)
            raise AuditUnavailableError(f"audit log {self._path} could not be written: {error}") from error
        self._settle_write(log_file, entries, heads, now_s)
        return entries

    def _settle_write(self, log_file: LogFile, entries: list[AuditEntry], heads: list[SignedHead], now_s: float) -> None:
        """Move the head past a committed write, or fail when the file was swapped out during it."""
        if log_file.is_replaced():
            log_file.close_detached()
            self._file = None
            logger.error("audit log %s was deleted or replaced during a write", self._path)
            raise AuditUnavailableError(
                f"audit log {self._path} was deleted or replaced during the write; "
                "the entry is not in the file at that path"
            )
        if entries:
            self._head = (entries[-1].seq, entries[-1].entry_hash)
        self._entries_since_checkpoint += len(entries)
        if heads:
            self._latest_head = heads[0]
            self._entries_since_checkpoint = 0
            self._last_checkpoint_s = now_s

    def _chain(self, drafts: list[dict[str, str | int]], now_s: float) -> list[AuditEntry]:
        seq, prev_hash = self._head
        entries = []
        for draft in drafts:
            seq += 1
            values = {**_SYSTEM_DEFAULTS, **draft}
            values.update(seq=seq, time_ms=_ms(now_s), server_id=self._server_id, prev_hash=prev_hash)
            prev_hash = hash_fields(values)
            entries.append(AuditEntry(**values, entry_hash=prev_hash))
        return entries

    def _writable_file(self) -> LogFile:
        try:
            return self._ensure_file()
        except (OSError, sqlite3.Error) as error:
            self._discard_file()
            raise AuditUnavailableError(f"audit log {self._path} could not be opened: {error}") from error

    def _ensure_file(self, at_start: bool = False) -> LogFile:
        """Return the open file, reopening or starting one when the file at `path` changed."""
        if self._file is not None and not self._file.is_replaced():
            return self._file
        if self._file is not None:
            logger.error("audit log %s was deleted or replaced while open; reopening", self._path)
            self._file.close_detached()
            self._file = None

        anchor = self._head
        if is_new_file(self._path):
            log_file = LogFile.open(self._path, server_id=self._server_id, public_key=self._public_key, anchor=anchor)
            self._file = log_file
            reason = "new log" if anchor[0] == 0 else f"new file after the file was lost; previous head seq {anchor[0]}"
            self._commit([{"action": GENESIS_ACTION, "reason": reason, "public_key": self._public_key}], sign=True)
            return log_file

        try:
            log_file = LogFile.open(self._path, server_id=self._server_id, public_key=self._public_key, anchor=anchor)
        except ConfigError as error:
            if at_start:
                raise
            raise AuditUnavailableError(f"audit log {self._path} was replaced by another file: {error}") from error
        if not self._continues_head(log_file):
            log_file.close()
            raise AuditUnavailableError(
                f"audit log {self._path} was replaced by a file that does not continue this log; "
                "move that file away so a new log file can start"
            )
        self._file = log_file
        self._head = log_file.head()
        stored = log_file.connection.execute("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1")
        stored.row_factory = sqlite3.Row
        row = stored.fetchone()
        if row is not None and (self._latest_head is None or row["seq"] >= self._latest_head.seq):
            self._latest_head = head_from_row(row)
        if self._latest_head is None:
            self._commit([], sign=True)
        return log_file

    def _continues_head(self, log_file: LogFile) -> bool:
        seq, entry_hash = self._head
        if seq == 0:
            return True
        row = log_file.connection.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            return row[0] == entry_hash
        return log_file.head() == self._head

    def _discard_file(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except sqlite3.Error as error:
            logger.warning("closing audit log %s failed: %s", self._path, error)
        self._file = None


def _draft_from_record(record: AuditRecord) -> dict[str, str | int]:
    return {name: getattr(record, name) for name in AuditRecord.__dataclass_fields__}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
