"""Retired KEK versions as the keystore records them, and its view of the secret server's KEK-B versions.

A retirement is marked "retiring" in `retired_kek_versions` in the same
BEGIN IMMEDIATE transaction as its final usage check. PutKey reads the table
inside its own BEGIN IMMEDIATE transaction and rejects a version marked
"retiring" or "retired", and SQLite runs the two one after the other.
Either PutKey commits first and the usage check counts its row, or the mark
commits first and PutKey rejects the row. So no row lands under a version
after the check found none. The keyring change (or the secret server's
retirement) happens after that commit, and a second transaction then marks
the version "retired".
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
    -- "retiring" from the usage check until the keyring change is done, then "retired".
    state TEXT NOT NULL DEFAULT 'retired',
    PRIMARY KEY (kind, version)
);
"""

RETIRED = "retired"
RETIRING = "retiring"


def create_table(db) -> None:
    connection = db.connection()
    connection.executescript(SCHEMA)
    # Tables created before the "retiring" step held only finished retirements.
    columns = {found["name"] for found in connection.execute("PRAGMA table_info(retired_kek_versions)")}
    if "state" not in columns:
        connection.execute("ALTER TABLE retired_kek_versions ADD COLUMN state TEXT NOT NULL DEFAULT 'retired'")


def mark_retiring(connection, kind: str, version: int) -> None:
    """Record, inside the caller's write transaction, that `version` is being retired."""
    connection.execute(
        "INSERT OR IGNORE INTO retired_kek_versions (kind, version, retired_at_ms, state) VALUES (?, ?, ?, ?)",
        (kind, version, now_ms(), RETIRING),
    )


def mark_retired(connection, kind: str, version: int) -> None:
    """Record a finished retirement inside the caller's write transaction."""
    connection.execute(
        "INSERT INTO retired_kek_versions (kind, version, retired_at_ms, state) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, version) DO UPDATE SET state = excluded.state, retired_at_ms = excluded.retired_at_ms",
        (kind, version, now_ms(), RETIRED),
    )


def clear_retiring(connection, kind: str, version: int) -> None:
    """Drop a "retiring" mark whose keyring change was rejected, inside the caller's write transaction."""
    connection.execute(
        "DELETE FROM retired_kek_versions WHERE kind = ? AND version = ? AND state = ?", (kind, version, RETIRING)
    )


def retirement_state(connection, kind: str, version: int) -> str | None:
    """Return "retiring", "retired", or None when the version has no retirement mark."""
    found = connection.execute(
        "SELECT state FROM retired_kek_versions WHERE kind = ? AND version = ?", (kind, version)
    ).fetchone()
    return found["state"] if found else None


def is_retired(connection, kind: str, version: int) -> bool:
    """Return True when `version` is retired or being retired, so no new row may use it."""
    return retirement_state(connection, kind, version) is not None


def unfinished(connection) -> list[tuple[str, int]]:
    """Return (kind, version) of every retirement still marked "retiring"."""
    return [
        (found["kind"], found["version"])
        for found in connection.execute(
            "SELECT kind, version FROM retired_kek_versions WHERE state = ? ORDER BY kind, version", (RETIRING,)
        )
    ]


def stale_wrap_b(version: int, reason: str) -> KeyVersionError:
    return KeyVersionError(f"wrap_b was made under KEK-B version {version}, which {reason}; call WrapShare again")


class KekBVersions:
    """The secret server's KEK-B version states, fetched through the SecretLink and cached.

    The cache is refreshed when a version is not in it. A cached state goes
    out of date only when a version is retired. Every retirement goes through
    this keystore's `retired_kek_versions` table, which `check_write` reads
    inside the write transaction, and drops the version's cache entry.
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

    def forget(self, version: int) -> None:
        """Drop the cached state of `version`, so the next check fetches it from the secret server."""
        with self._lock:
            self._states.pop(version, None)

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
        kek_b_state = retirement_state(connection, "kek-b", kek_b_version)
        if kek_b_state is not None:
            _logger.warning("rejected a wrap_b under KEK-B version %d, %s while the request ran",
                            kek_b_version, kek_b_state)
            raise stale_wrap_b(kek_b_version, "is retired" if kek_b_state == RETIRED else "is being retired")
        if is_retired(connection, "kek-a", kek_a_version):
            raise KeyVersionError(
                f"KEK-A version {kek_a_version} was retired while this request ran; call WrapShare and PutKey again"
            )
