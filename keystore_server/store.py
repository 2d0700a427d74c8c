"""The keystore's SQLite tables and the transactions over them."""

from __future__ import annotations

import time
from pathlib import Path

from keystore_server.rows import ACTIVE, REPLACED, RecordRow
from splitkey.errors import ConflictError, NotFoundError
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
    mac BLOB NOT NULL
);
-- At most one active key per workspace and provider.
CREATE UNIQUE INDEX IF NOT EXISTS records_one_active
    ON records (workspace, provider) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS records_by_workspace ON records (workspace);
-- Replies of acknowledged writes, so a retried request takes effect once.
CREATE TABLE IF NOT EXISTS write_requests (
    request_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    digest BLOB NOT NULL,
    response BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
"""

_COLUMNS = (
    "record_id", "workspace", "provider", "status", "ciphertext", "wrap_a", "wrap_b",
    "kek_a_version", "kek_b_version", "key_hint", "created_at_ms", "row_version", "mac",
)


def _row(sqlite_row) -> RecordRow:
    return RecordRow(**{name: sqlite_row[name] for name in _COLUMNS})


class KeystoreStore:
    def __init__(self, path: Path, busy_timeout_s: float = 5.0):
        self.db = Database(path, busy_timeout_s)
        self.db.connection().executescript(_SCHEMA)

    def put_record(self, row: RecordRow, *, request_id: str, actor: str, digest: bytes, sign, respond) -> bytes:
        """Insert `row` as the active key of its workspace and provider, once per request id.

        `sign(row)` returns the row with a fresh MAC (used for the row this one
        replaces); `respond(replaced_record_id)` builds the serialized reply,
        which is stored with the request id so a retry gets the same reply.
        A retry with the same id but other content raises ConflictError.
        """
        with self.db.write() as connection:
            previous = connection.execute(
                "SELECT actor, digest, response FROM write_requests WHERE request_id = ?", (request_id,)
            ).fetchone()
            if previous is not None:
                if previous["actor"] != actor or bytes(previous["digest"]) != digest:
                    raise ConflictError(
                        f"request_id {request_id} was already used for a different request; use a new request_id"
                    )
                return bytes(previous["response"])
            if connection.execute("SELECT 1 FROM records WHERE record_id = ?", (row.record_id,)).fetchone():
                raise ConflictError(f"record_id {row.record_id} already exists; generate a new random record_id")
            replaced = connection.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM records WHERE workspace = ? AND provider = ? AND status = ?",
                (row.workspace, row.provider, ACTIVE),
            ).fetchone()
            replaced_id = ""
            if replaced is not None:
                old = _row(replaced)
                old = sign(old.with_changes(status=REPLACED, row_version=old.row_version + 1))
                connection.execute(
                    "UPDATE records SET status = ?, row_version = ?, mac = ? WHERE record_id = ?",
                    (old.status, old.row_version, old.mac, old.record_id),
                )
                replaced_id = old.record_id
            connection.execute(
                f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                tuple(getattr(row, name) for name in _COLUMNS),
            )
            response = respond(replaced_id)
            connection.execute(
                "INSERT INTO write_requests (request_id, actor, digest, response, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                (request_id, actor, digest, response, int(time.time() * 1000)),
            )
            return response

    def active_record(self, workspace: str, provider: str) -> RecordRow | None:
        found = self.db.connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE workspace = ? AND provider = ? AND status = ?",
            (workspace, provider, ACTIVE),
        ).fetchone()
        return _row(found) if found is not None else None

    def record(self, record_id: str) -> RecordRow:
        found = self.db.connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE record_id = ?", (record_id,)
        ).fetchone()
        if found is None:
            raise NotFoundError(f"record {record_id} does not exist")
        return _row(found)

    def records_of(self, workspace: str) -> list[RecordRow]:
        rows = self.db.connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE workspace = ? ORDER BY created_at_ms, record_id",
            (workspace,),
        ).fetchall()
        return [_row(found) for found in rows]

    def has_workspace(self, workspace: str) -> bool:
        return self.db.connection().execute(
            "SELECT 1 FROM records WHERE workspace = ? LIMIT 1", (workspace,)
        ).fetchone() is not None
