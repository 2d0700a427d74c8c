"""SQLite connections for the servers: WAL, durable commits, write lock taken up front.

Each thread gets its own connection. `write()` opens the transaction with
BEGIN IMMEDIATE, so a transaction that reads and then writes holds the write
lock from its start and cannot fail half-way with "database is locked" (a
deferred transaction that upgrades its lock is not covered by the busy
timeout). A lock that is still held after the busy timeout becomes a
retryable TransportError (UNAVAILABLE), never an INTERNAL error.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

import sqlite_utils

from splitkey.errors import ConfigError, TransportError

_logger = logging.getLogger(__name__)


class Database:
    def __init__(self, path: Path, busy_timeout_s: float = 5.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            connection = self.connection()
            sqlite_utils.Database(connection).enable_wal()
            connection.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"database {self.path} cannot be opened ({error}); restore it from a backup or move it away"
            ) from None

    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=True
            )
            # FULL makes every commit durable in WAL mode: an acknowledged
            # write survives kill -9 and power loss.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    def utils(self) -> sqlite_utils.Database:
        """sqlite-utils view of this thread's connection, for schema work."""
        return sqlite_utils.Database(self.connection())

    @contextlib.contextmanager
    def write(self):
        """Run a read-then-write transaction under the write lock (BEGIN IMMEDIATE)."""
        connection = self.connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise _busy(error) from None
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            connection.execute("ROLLBACK")
            raise _busy(error) from None

    @contextlib.contextmanager
    def read(self):
        """Run reads in one snapshot (a deferred transaction that never writes)."""
        connection = self.connection()
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _busy(error: sqlite3.OperationalError) -> Exception:
    if "locked" in str(error) or "busy" in str(error):
        _logger.warning("database write lock not acquired within the busy timeout: %s", error)
        return TransportError("database is busy; retry the request", "UNAVAILABLE")
    return error
