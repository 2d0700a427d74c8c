"""Retired KEK versions as the keystore records them, and its view of the secret server's KEK-B versions.

A retirement is written to `retired_kek_versions` in the same BEGIN IMMEDIATE
transaction as its final usage check. PutKey reads the table inside its own
BEGIN IMMEDIATE transaction, and SQLite runs the two one after the other.
Either PutKey commits first and the usage check counts its row, or the
retirement commits first and PutKey rejects the row. So no row lands under a
version after the check found none.
"""

from __future__ import annotations

import logging
import threading

from keystore_server.rotation.jobs import now_ms
from splitkey.errors import KeyVersionError

_logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS retired_kek_versions (
    -- "kek-a" or "kek-b".
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    retired_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, version)
);
"""

RETIRED = "retired"


def create_table(db) -> None:
    db.connection().executescript(SCHEMA)


def mark_retired(connection, kind: str, version: int) -> None:
    """Record a retirement inside the caller's write transaction."""
    connection.execute(
        "INSERT OR IGNORE INTO retired_kek_versions (kind, version, retired_at_ms) VALUES (?, ?, ?)",
        (kind, version, now_ms()),
    )


def is_retired(connection, kind: str, version: int) -> bool:
    return connection.execute(
        "SELECT 1 FROM retired_kek_versions WHERE kind = ? AND version = ?", (kind, version)
    ).fetchone() is not None


def stale_wrap_b(version: int, reason: str) -> KeyVersionError:
    return KeyVersionError(f"wrap_b was made under KEK-B version {version}, which {reason}; call WrapShare again")


class KekBVersions:
    """The secret server's KEK-B version states, fetched through the SecretLink and cached.

    The cache is refreshed when a version is not in it. A cached state goes
    out of date only when a version is retired, and every retirement goes
    through this keystore's `retired_kek_versions` table, which `check_write`
    reads inside the write transaction.
    """

    def __init__(self, db, link):
        self._link = link
        self._states: dict[int, str] = {}
        self._lock = threading.Lock()
        create_table(db)

    def _state(self, version: int) -> str | None:
        with self._lock:
            state = self._states.get(version)
        if state is not None:
            return state
        reply = self._link.kek_versions()
        states = {item.version: item.state for item in reply.versions}
        with self._lock:
            self._states = states
        return states.get(version)

    def check_usable(self, version: int) -> None:
        """Raise KeyVersionError when the secret server has no KEK-B `version` or has retired it.

        Call it before the write transaction, because it may call KekVersions
        on the secret server.
        """
        state = self._state(version)
        if state is None:
            raise stale_wrap_b(version, "the secret server does not hold")
        if state == RETIRED:
            raise stale_wrap_b(version, "is retired")

    @staticmethod
    def check_write(connection, *, kek_a_version: int, kek_b_version: int) -> None:
        """Raise KeyVersionError when a row's KEK version was retired; call inside the write transaction."""
        if is_retired(connection, "kek-b", kek_b_version):
            _logger.warning("rejected a wrap_b under KEK-B version %d, retired while the request ran", kek_b_version)
            raise stale_wrap_b(kek_b_version, "is retired")
        if is_retired(connection, "kek-a", kek_a_version):
            raise KeyVersionError(
                f"KEK-A version {kek_a_version} was retired while this request ran; call WrapShare and PutKey again"
            )
