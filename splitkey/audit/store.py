"""The SQLite file of one audit log: schema, writes, reads and file identity.

The log has a file of its own, apart from the server's main database, in WAL
mode with `synchronous=FULL`: a commit is fsynced before it returns. Tables are
STRICT, so no column can silently hold bytes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from splitkey.audit.entry import ENTRY_FIELDS, INT_FIELDS, AuditEntry
from splitkey.audit.head import SignedHead
from splitkey.errors import ConfigError

logger = logging.getLogger(__name__)

FORMAT = "splitkey-audit-v1"


def _column(name: str) -> str:
    if name == "seq":
        return "seq INTEGER PRIMARY KEY"
    return f"{name} INTEGER NOT NULL" if name in INT_FIELDS else f"{name} TEXT NOT NULL"


_ENTRY_COLUMNS = ",\n    ".join(_column(name) for name in ENTRY_FIELDS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    {_ENTRY_COLUMNS},
    entry_hash TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    server_id TEXT NOT NULL,
    entry_hash TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    signature TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS entries_time ON entries (time_ms);
CREATE INDEX IF NOT EXISTS entries_workspace ON entries (workspace, time_ms);
CREATE INDEX IF NOT EXISTS entries_record ON entries (record_id);
CREATE INDEX IF NOT EXISTS entries_actor ON entries (actor, time_ms);
CREATE INDEX IF NOT EXISTS entries_request ON entries (request_id);
"""

_ALL_COLUMNS = ENTRY_FIELDS + ("entry_hash",)
_INSERT_ENTRY = (
    f"INSERT INTO entries ({', '.join(_ALL_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in _ALL_COLUMNS)})"
)

FileId = tuple[int, int]


def file_id(path: Path) -> FileId | None:
    """Return (device, inode) of the file at `path`, or None when nothing is there."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_dev, status.st_ino)


def wal_path(path: Path) -> Path:
    """Return the path of SQLite's write-ahead log next to `path`."""
    return path.with_name(path.name + "-wal")


class LogFile:
    """The writer thread's connection to one audit file, and that file's identity.

    The identity is the inode of the database file and of its `-wal` file.
    If either changes, the file was deleted or replaced under the open
    connection, and commits would land in an unlinked file.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection
        self.identity = self._current_identity()

    @classmethod
    def open(cls, path: Path, *, server_id: str, public_key: str, anchor: tuple[int, str]) -> LogFile:
        """Open or create the audit file at `path`.

        A new file gets the meta rows (server id, public key and the anchor:
        seq and hash of the entry before its first). An existing file must
        belong to the same server and key, or ConfigError is raised.
        """
        existing = not is_new_file(path)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # Check an existing file before anything writes to it: it may be
            # another program's database that was moved to this path.
            if existing:
                _check_meta(path, _existing_meta(path, connection), server_id, public_key)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(SCHEMA)
            if not existing:
                with transaction(connection):
                    write_meta(connection, {
                        "format": FORMAT,
                        "server_id": server_id,
                        "public_key": public_key,
                        "anchor_seq": str(anchor[0]),
                        "anchor_hash": anchor[1],
                    })
        except BaseException:
            connection.close()
            raise
        return cls(path, connection)

    def is_replaced(self) -> bool:
        """Return True when the database or `-wal` file at the path is not the one opened."""
        # NOTE: a file truncated in place keeps its inode and is not detected
        # here. SQLite then reports corruption, which fails the write.
        return self._current_identity() != self.identity

    def _current_identity(self) -> tuple[FileId | None, FileId | None]:
        return (file_id(self.path), file_id(wal_path(self.path)))

    def head(self) -> tuple[int, str]:
        """Return (seq, entry_hash) of the newest entry, or the anchor when there is none."""
        row = self.connection.execute(
            "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return (row[0], row[1])
        meta = read_meta(self.connection)
        return (int(meta["anchor_seq"]), meta["anchor_hash"])

    def insert(self, entries: Iterable[AuditEntry], heads: Iterable[SignedHead] = ()) -> None:
        """Write entries and checkpoints in one fsynced transaction."""
        with transaction(self.connection):
            self.connection.executemany(_INSERT_ENTRY, [e.to_dict() for e in entries])
            self.connection.executemany(
                "INSERT INTO checkpoints (seq, server_id, entry_hash, time_ms, signature) "
                "VALUES (:seq, :server_id, :entry_hash, :time_ms, :signature)",
                [h.to_dict() for h in heads],
            )

    def prune(self, up_to_seq: int, anchor_hash: str, entries: Iterable[AuditEntry] = ()) -> int:
        """Delete entries up to `up_to_seq`, make that entry's hash the anchor, and return the count.

        `entries` (the record of the prune) are inserted in the same fsynced
        transaction, so the deletion never lands without them.
        """
        with transaction(self.connection):
            self.connection.executemany(_INSERT_ENTRY, [e.to_dict() for e in entries])
            deleted = self.connection.execute(
                "DELETE FROM entries WHERE seq <= ?", (up_to_seq,)
            ).rowcount
            write_meta(self.connection, {"anchor_seq": str(up_to_seq), "anchor_hash": anchor_hash})
            self.connection.execute("DELETE FROM checkpoints WHERE seq < ?", (up_to_seq,))
        return deleted

    def close(self) -> None:
        """Close the connection; SQLite then folds the WAL into the database file."""
        self.connection.close()

    def close_detached(self) -> None:
        """Close the connection to a file that was deleted or replaced, and remove its WAL.

        SQLite leaves the WAL behind when the database file has moved, and a
        connection opened later at the same path would replay those frames
        into whatever file is there now. So the frames are first copied into
        the old file (still open under its inode), then the WAL and its index
        are removed, but only if the WAL at the path is still this connection's.
        """
        try:
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            logger.warning("checkpoint of detached audit log %s failed: %s", self.path, error)
        try:
            self.connection.close()
        except sqlite3.Error as error:
            logger.warning("closing detached audit log %s failed: %s", self.path, error)
        own_wal = self.identity[1]
        if own_wal is not None and file_id(wal_path(self.path)) == own_wal:
            for companion in (wal_path(self.path), self.path.with_name(self.path.name + "-shm")):
                companion.unlink(missing_ok=True)


class transaction:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` when the block raises."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self._connection.execute("COMMIT")
            return
        if self._connection.in_transaction:
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # The original error is the one worth raising.


def read_meta(connection: sqlite3.Connection) -> dict[str, str]:
    """Return the meta table as a dictionary."""
    return dict(connection.execute("SELECT name, value FROM meta").fetchall())


def write_meta(connection: sqlite3.Connection, values: dict[str, str]) -> None:
    """Insert or replace meta rows inside a transaction the caller has begun."""
    connection.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def _existing_meta(path: Path, connection: sqlite3.Connection) -> dict[str, str]:
    try:
        has_meta = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path} is not a splitkey audit log: {error}") from error
    if has_meta is None:
        raise ConfigError(f"{path} is not a splitkey audit log (it has no meta table)")
    return read_meta(connection)


def _check_meta(path: Path, meta: dict[str, str], server_id: str, public_key: str) -> None:
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a splitkey audit log (format {meta.get('format')!r})")
    if meta.get("server_id") != server_id:
        raise ConfigError(
            f"audit log {path} belongs to server {meta.get('server_id')!r}, not {server_id!r}; "
            "configure the matching server id or another audit path"
        )
    if meta.get("public_key") != public_key:
        raise ConfigError(
            f"audit log {path} was created with another signing key; "
            "configure the key it was created with or another audit path"
        )


def open_reader(path: Path) -> sqlite3.Connection:
    """Open a read-only connection that never creates a file at `path`."""
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    return connection


def entry_from_row(row: sqlite3.Row) -> AuditEntry:
    """Convert an `entries` row to an AuditEntry."""
    return AuditEntry(**{name: row[name] for name in _ALL_COLUMNS})


def head_from_row(row: sqlite3.Row) -> SignedHead:
    """Convert a `checkpoints` row to a SignedHead."""
    return SignedHead(row["server_id"], row["seq"], row["entry_hash"], row["time_ms"], row["signature"])


def is_new_file(path: Path) -> bool:
    """Return True when nothing, or only an empty file, is at `path`."""
    try:
        return os.stat(path).st_size == 0
    except FileNotFoundError:
        return True

