"""The keystore's SQLite tables and the transactions over them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from keystore_server.rows import ACTIVE, REMOVED, REPLACED, RecordRow
from splitkey.errors import ConflictError, NotFoundError
from splitkey.secret import constant_time_equal
from splitkey.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    wrap_a BLOB NOT NULL,
    wrap_b BLOB NOT NULL,
    kek_a_version INTEGER NOT NULL,
    kek_b_version INTEGER NOT NULL,
    key_hint TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    row_version INTEGER NOT NULL,
    mac BLOB NOT NULL,
    fingerprint TEXT NOT NULL DEFAULT '',
    -- Operational metadata outside the MAC, written in batches.
    last_used_at_ms INTEGER NOT NULL DEFAULT 0
);
-- At most one active key per workspace and provider.
CREATE UNIQUE INDEX IF NOT EXISTS records_one_active
    ON records (workspace, provider) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS records_by_workspace ON records (workspace);
-- API mode of each known workspace; the MAC covers every column but itself.
CREATE TABLE IF NOT EXISTS workspaces (
    workspace TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    row_version INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    mac_version INTEGER NOT NULL,
    mac BLOB NOT NULL
);
-- Replies of acknowledged writes, so a retried request takes effect once.
CREATE TABLE IF NOT EXISTS write_requests (
    request_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    digest BLOB NOT NULL,
    response BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
-- Tombstones the secret server has not confirmed yet. Written in the same
-- transaction as the replace or remove, so none is lost when the secret
-- server is down or the keystore crashes.
CREATE TABLE IF NOT EXISTS tombstone_outbox (
    record_id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
"""

_COLUMNS = (
    "record_id", "workspace", "provider", "status", "ciphertext", "wrap_a", "wrap_b",
    "kek_a_version", "kek_b_version", "key_hint", "created_at_ms", "row_version", "mac", "fingerprint",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)}, last_used_at_ms FROM records"


def _row(sqlite_row) -> RecordRow:
    return RecordRow(**{name: sqlite_row[name] for name in _COLUMNS})


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeystoreStore:
    def __init__(self, path: Path, busy_timeout_s: float = 5.0):
        self.db = Database(path, busy_timeout_s)
        self.db.connection().executescript(_SCHEMA)
        self._last_used: dict[str, int] = {}
        self._last_used_lock = threading.Lock()

    # -- idempotent writes ---------------------------------------------------

    @staticmethod
    def _replay(connection, request_id: str, actor: str, digest: bytes) -> bytes | None:
        """Return the stored reply of an earlier identical request, or None for a new request id."""
        previous = connection.execute(
            "SELECT actor, digest, response FROM write_requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        if previous is None:
            return None
        if previous["actor"] != actor or not constant_time_equal(bytes(previous["digest"]), digest):
            raise ConflictError(f"request_id {request_id} was already used for a different request; use a new request_id")
        return bytes(previous["response"])

    @staticmethod
    def _remember(connection, request_id: str, actor: str, digest: bytes, response: bytes) -> None:
        connection.execute(
            "INSERT INTO write_requests (request_id, actor, digest, response, created_at_ms) VALUES (?, ?, ?, ?, ?)",
            (request_id, actor, digest, response, _now_ms()),
        )

    def _retire_active(self, connection, workspace: str, provider: str, status: str, sign) -> str:
        """Mark the active record of (workspace, provider) replaced or removed; queue its tombstone."""
        found = connection.execute(
            f"{_SELECT} WHERE workspace = ? AND provider = ? AND status = ?", (workspace, provider, ACTIVE)
        ).fetchone()
        if found is None:
            return ""
        old = _row(found)
        old = sign(old.with_changes(status=status, row_version=old.row_version + 1))
        connection.execute(
            "UPDATE records SET status = ?, row_version = ?, mac = ? WHERE record_id = ?",
            (old.status, old.row_version, old.mac, old.record_id),
        )
        connection.execute(
            "INSERT OR IGNORE INTO tombstone_outbox (record_id, workspace, reason, created_at_ms) VALUES (?, ?, ?, ?)",
            (old.record_id, old.workspace, status, _now_ms()),
        )
        return old.record_id

    def put_record(self, row: RecordRow, *, request_id: str, actor: str, digest: bytes, sign, respond,
                   sign_mode=None, check=None) -> bytes:
        """Insert `row` as the active key of its workspace and provider, once per request id.

        `sign(row)` returns the row with a fresh MAC (used for the row this one
        replaces); `respond(replaced_record_id)` builds the serialized reply,
        which is stored with the request id so a retry gets the same reply.
        A retry with the same id but other content raises ConflictError.
        With `sign_mode`, a workspace without a mode row gets a signed
        "platform" row in the same transaction, so every workspace that has
        keys has a mode row and a deleted one is detectable. `check(connection)`
        runs inside the write transaction before anything is written and may
        raise to reject the row.
        """
        with self.db.write() as connection:
            previous = self._replay(connection, request_id, actor, digest)
            if previous is not None:
                return previous
            if check is not None:
                check(connection)
            if connection.execute("SELECT 1 FROM records WHERE record_id = ?", (row.record_id,)).fetchone():
                raise ConflictError(f"record_id {row.record_id} already exists; generate a new random record_id")
            replaced_id = self._retire_active(connection, row.workspace, row.provider, REPLACED, sign)
            if sign_mode is not None:
                self._ensure_mode_row(connection, row.workspace, sign_mode)
            connection.execute(
                f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                tuple(getattr(row, name) for name in _COLUMNS),
            )
            response = respond(replaced_id)
            self._remember(connection, request_id, actor, digest, response)
            return response

    def remove_record(self, workspace: str, provider: str, *, request_id: str, actor: str, digest: bytes, sign, respond) -> bytes:
        with self.db.write() as connection:
            previous = self._replay(connection, request_id, actor, digest)
            if previous is not None:
                return previous
            removed_id = self._retire_active(connection, workspace, provider, REMOVED, sign)
            if not removed_id:
                raise NotFoundError(f"workspace '{workspace}' has no active {provider} key to remove")
            response = respond(removed_id)
            self._remember(connection, request_id, actor, digest, response)
            return response

    @staticmethod
    def _ensure_mode_row(connection, workspace: str, sign_mode) -> None:
        if connection.execute("SELECT 1 FROM workspaces WHERE workspace = ?", (workspace,)).fetchone():
            return
        mac_version, mac = sign_mode(workspace, "platform", 1)
        connection.execute(
            "INSERT INTO workspaces (workspace, mode, row_version, updated_at_ms, mac_version, mac) VALUES (?, ?, 1, ?, ?, ?)",
            (workspace, "platform", _now_ms(), mac_version, mac),
        )

    def has_records(self, workspace: str) -> bool:
        return self.db.connection().execute(
            "SELECT 1 FROM records WHERE workspace = ? LIMIT 1", (workspace,)
        ).fetchone() is not None

    def set_mode(self, workspace: str, mode: str, *, request_id: str, actor: str, digest: bytes, sign_mode, respond) -> bytes:
        """Store a workspace's mode; `sign_mode(workspace, mode, row_version)` returns (mac_version, mac)."""
        with self.db.write() as connection:
            previous = self._replay(connection, request_id, actor, digest)
            if previous is not None:
                return previous
            found = connection.execute("SELECT row_version FROM workspaces WHERE workspace = ?", (workspace,)).fetchone()
            row_version = (found["row_version"] + 1) if found else 1
            mac_version, mac = sign_mode(workspace, mode, row_version)
            connection.execute(
                "INSERT INTO workspaces (workspace, mode, row_version, updated_at_ms, mac_version, mac) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace) DO UPDATE SET mode = excluded.mode, "
                "row_version = excluded.row_version, updated_at_ms = excluded.updated_at_ms, "
                "mac_version = excluded.mac_version, mac = excluded.mac",
                (workspace, mode, row_version, _now_ms(), mac_version, mac),
            )
            response = respond()
            self._remember(connection, request_id, actor, digest, response)
            return response

    # -- reads -----------------------------------------------------------------

    def workspace_mode(self, workspace: str):
        """Return the workspaces row (mode, row_version, mac_version, mac) or None."""
        return self.db.connection().execute(
            "SELECT workspace, mode, row_version, mac_version, mac FROM workspaces WHERE workspace = ?", (workspace,)
        ).fetchone()

    def active_record(self, workspace: str, provider: str) -> RecordRow | None:
        found = self.db.connection().execute(
            f"{_SELECT} WHERE workspace = ? AND provider = ? AND status = ?", (workspace, provider, ACTIVE)
        ).fetchone()
        return _row(found) if found is not None else None

    def active_providers(self, workspace: str) -> list[str]:
        rows = self.db.connection().execute(
            "SELECT provider FROM records WHERE workspace = ? AND status = ? ORDER BY provider", (workspace, ACTIVE)
        ).fetchall()
        return [found["provider"] for found in rows]

    def record(self, record_id: str) -> RecordRow:
        found = self.db.connection().execute(f"{_SELECT} WHERE record_id = ?", (record_id,)).fetchone()
        if found is None:
            raise NotFoundError(f"record {record_id} does not exist")
        return _row(found)

    def records_of(self, workspace: str) -> list[tuple[RecordRow, int]]:
        """Every record of a workspace with its last-used time (ms, 0 when never used)."""
        self.flush_last_used()
        rows = self.db.utils()["records"].rows_where(
            "workspace = ?", [workspace], order_by="created_at_ms, record_id", select=", ".join((*_COLUMNS, "last_used_at_ms"))
        )
        return [(_row(found), found["last_used_at_ms"]) for found in rows]

    def has_workspace(self, workspace: str) -> bool:
        connection = self.db.connection()
        if connection.execute("SELECT 1 FROM workspaces WHERE workspace = ?", (workspace,)).fetchone():
            return True
        return connection.execute("SELECT 1 FROM records WHERE workspace = ? LIMIT 1", (workspace,)).fetchone() is not None

    # -- last used -------------------------------------------------------------

    def mark_used(self, record_id: str) -> None:
        """Note a use in memory; `flush_last_used` writes the batch (one write per interval, not per decrypt)."""
        with self._last_used_lock:
            self._last_used[record_id] = _now_ms()

    def flush_last_used(self) -> None:
        with self._last_used_lock:
            pending, self._last_used = self._last_used, {}
        if not pending:
            return
        with self.db.write() as connection:
            connection.executemany(
                "UPDATE records SET last_used_at_ms = MAX(last_used_at_ms, ?) WHERE record_id = ?",
                [(used_at, record_id) for record_id, used_at in pending.items()],
            )

    # -- tombstone outbox ------------------------------------------------------

    def pending_tombstones(self, limit: int = 100) -> list:
        return self.db.connection().execute(
            "SELECT record_id, workspace, reason FROM tombstone_outbox ORDER BY created_at_ms LIMIT ?", (limit,)
        ).fetchall()

    def tombstone_delivered(self, record_id: str) -> None:
        with self.db.write() as connection:
            connection.execute("DELETE FROM tombstone_outbox WHERE record_id = ?", (record_id,))
