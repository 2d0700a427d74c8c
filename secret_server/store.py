"""The secret server's SQLite tables: tombstones of replaced or removed records. No secrets."""

from __future__ import annotations

import time
from pathlib import Path

from splitkey.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tombstones (
    record_id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
"""


class SecretStore:
    def __init__(self, path: Path, busy_timeout_s: float = 5.0):
        self.db = Database(path, busy_timeout_s)
        self.db.connection().executescript(_SCHEMA)

    def is_tombstoned(self, record_id: str) -> bool:
        return self.db.connection().execute(
            "SELECT 1 FROM tombstones WHERE record_id = ?", (record_id,)
        ).fetchone() is not None

    def add_tombstone(self, record_id: str, workspace: str, reason: str, actor: str) -> None:
        with self.db.write() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO tombstones (record_id, workspace, reason, actor, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                (record_id, workspace, reason, actor, int(time.time() * 1000)),
            )
