"""The secret server's SQLite tables: tombstones of replaced or removed records, under a KEK-B-derived MAC. No secrets.

A tombstone is the secret server's own record that a record id must never
be unwrapped again, so it still applies after the keystore is restored from a
backup that predates the replace or remove. A head row contains a
generation counter and an HMAC (128 bits, hex) over the generation and every
tombstone, under a key derived from KEK-B. A tombstone deleted, edited or
added in the database without KEK-B fails the check. The secret server then
logs an error and rejects every WrapShare and UnwrapShare with IntegrityError
until the database is repaired.
NOTE: deleting every tombstone together with the head row looks like a
database that never had tombstones, and a copy of an older secret database
passes the check too. The MAC covers edits of single rows only.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from splitkey import table_mac
from splitkey.errors import IntegrityError, KeyVersionError
from splitkey.secret import constant_time_equal
from splitkey.sqlite import Database

_logger = logging.getLogger(__name__)
_PURPOSE = "tombstones"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tombstones (
    record_id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
-- One row: a generation counter and the MAC over it and every tombstone.
CREATE TABLE IF NOT EXISTS tombstone_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    mac_version INTEGER NOT NULL,
    -- Hex of the first 16 bytes of the HMAC-SHA256.
    mac TEXT NOT NULL
);
"""


class SecretStore:
    """The secret server's database. `keyring` is the KEK-B LiveKeyring that keys the tombstone MAC."""

    def __init__(self, path: Path, keyring, deployment: str, busy_timeout_s: float = 5.0):
        self.db = Database(path, busy_timeout_s)
        self._keyring = keyring
        self._deployment = deployment
        # Per thread, like the connections: (PRAGMA data_version, verified record ids).
        self._verified_cache = threading.local()
        self.db.connection().executescript(_SCHEMA)

    def _mac(self, version: int, generation: int, rows) -> str:
        key = table_mac.derive_key(self._keyring, version, purpose=_PURPOSE, label="secret",
                                   deployment=self._deployment)

        def fields():
            yield b"splitkey-tombstones-v1"
            yield str(generation).encode()
            for row in rows:
                yield row["record_id"].encode()
                yield row["workspace"].encode()
                yield row["reason"].encode()
                yield row["actor"].encode()
                yield str(row["created_at_ms"]).encode()

        return table_mac.tag_hex(key, fields())

    @staticmethod
    def _rows(connection) -> list:
        return connection.execute(
            "SELECT record_id, workspace, reason, actor, created_at_ms FROM tombstones ORDER BY record_id"
        ).fetchall()

    def _verified(self, connection) -> frozenset[str]:
        """Read every tombstone and check the head MAC; return the record ids or raise IntegrityError."""
        rows = self._rows(connection)
        head = connection.execute("SELECT generation, mac_version, mac FROM tombstone_head WHERE id = 1").fetchone()
        if head is None:
            if rows:
                _logger.error("%d tombstones exist without their MAC head row; rejecting every request", len(rows))
                raise IntegrityError()
            return frozenset()
        try:
            expected = self._mac(head["mac_version"], head["generation"], rows)
        except KeyVersionError as error:
            _logger.error("tombstones are signed under KEK-B version %d, which is unusable (%s); "
                          "rejecting every request", head["mac_version"], error)
            raise IntegrityError() from None
        if not constant_time_equal(expected, str(head["mac"])):
            _logger.error("tombstones fail their MAC (generation %d, %d rows); a row was deleted, edited or added "
                          "outside the secret server; rejecting every request", head["generation"], len(rows))
            raise IntegrityError()
        return frozenset(row["record_id"] for row in rows)

    def _tombstoned_ids(self) -> frozenset[str]:
        connection = self.db.connection()
        with self.db.read() as snapshot:
            # data_version changes whenever another connection (another thread or
            # process) commits, so an edit from outside forces a new check.
            data_version = snapshot.execute("PRAGMA data_version").fetchone()[0]
            cached = getattr(self._verified_cache, "entry", None)
            if cached is not None and cached[0] == data_version and cached[2] is connection:
                return cached[1]
            ids = self._verified(snapshot)
        self._verified_cache.entry = (data_version, ids, connection)
        return ids

    def is_tombstoned(self, record_id: str) -> bool:
        """Return True when `record_id` was replaced or removed; raise IntegrityError when the MAC fails."""
        return record_id in self._tombstoned_ids()

    def add_tombstone(self, record_id: str, workspace: str, reason: str, actor: str) -> None:
        """Insert a tombstone (a second one for the same record is ignored) and re-sign the head."""
        with self.db.write() as connection:
            self._verified(connection)
            connection.execute(
                "INSERT OR IGNORE INTO tombstones (record_id, workspace, reason, actor, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                (record_id, workspace, reason, actor, int(time.time() * 1000)),
            )
            self._sign_head(connection)
        self._verified_cache.entry = None

    def _sign_head(self, connection) -> None:
        head = connection.execute("SELECT generation FROM tombstone_head WHERE id = 1").fetchone()
        generation = (head["generation"] + 1) if head else 1
        version = self._keyring.active_version
        mac = self._mac(version, generation, self._rows(connection))
        connection.execute(
            "INSERT INTO tombstone_head (id, generation, mac_version, mac) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, "
            "mac_version = excluded.mac_version, mac = excluded.mac",
            (generation, version, mac),
        )

    def resign(self) -> None:
        """Re-sign the tombstones under the active KEK-B version, so that an older version can be retired."""
        with self.db.write() as connection:
            rows = self._verified(connection)
            head = connection.execute("SELECT 1 FROM tombstone_head WHERE id = 1").fetchone()
            if head is not None or rows:
                self._sign_head(connection)
        self._verified_cache.entry = None

    def mac_version(self) -> int | None:
        """Return the KEK-B version that signs the tombstones, or None before the first tombstone."""
        head = self.db.connection().execute("SELECT mac_version FROM tombstone_head WHERE id = 1").fetchone()
        return head["mac_version"] if head else None
