"""Retirement proposals waiting for a second security identity, each MACed under a key derived from KEK-A.

The two-person rule for retiring a KEK version rests on the `retire_approvals`
rows, so each row carries an HMAC-SHA256 (purpose "access-mac", under the
KEK-A version active when the row was written) over the deployment, kind,
version, proposer and proposal time. A row inserted or edited in the
database without KEK-A fails the check. It is logged as an error and counts
as no proposal, so one identity can never retire a version alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from keystore_server.rotation.jobs import SCHEMA, now_ms
from keystore_server.rows import RowMac
from splitkey.errors import KeyVersionError
from splitkey.secret import constant_time_equal

_logger = logging.getLogger(__name__)

_PURPOSE = "access-mac"
# Columns added to retire_approvals databases created before the rows were MACed.
_MAC_COLUMNS = (("mac_version", "INTEGER NOT NULL DEFAULT 0"), ("mac", "BLOB NOT NULL DEFAULT x''"))


@dataclass(frozen=True)
class Proposal:
    proposed_by: str
    proposed_at_ms: int


class ApprovalBook:
    """Signed reads and writes of `retire_approvals`, inside the caller's write transaction."""

    def __init__(self, db, keyring, macs: RowMac):
        self._keyring = keyring
        self._macs = macs
        connection = db.connection()
        connection.executescript(SCHEMA)
        existing = {found["name"] for found in connection.execute("PRAGMA table_info(retire_approvals)")}
        for name, definition in _MAC_COLUMNS:
            if name not in existing:
                connection.execute(f"ALTER TABLE retire_approvals ADD COLUMN {name} {definition}")

    def _tag(self, mac_version: int, kind: str, version: int, proposed_by: str, proposed_at_ms: int) -> bytes:
        return self._macs.tag(
            mac_version, _PURPOSE,
            (b"splitkey-retire-approval-v1", kind.encode(), str(version).encode(), proposed_by.encode(),
             str(proposed_at_ms).encode()),
        )

    def propose(self, connection, kind: str, version: int, identity: str) -> None:
        """Write (or overwrite) the signed proposal of `identity` to retire `version`."""
        at = now_ms()
        mac_version = self._keyring.active_version
        mac = self._tag(mac_version, kind, version, identity, at)
        connection.execute(
            "INSERT INTO retire_approvals (kind, version, proposed_by, proposed_at_ms, mac_version, mac) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, version) DO UPDATE SET "
            "proposed_by = excluded.proposed_by, proposed_at_ms = excluded.proposed_at_ms, "
            "mac_version = excluded.mac_version, mac = excluded.mac",
            (kind, version, identity, at, mac_version, mac),
        )

    def pending(self, connection, kind: str, version: int) -> Proposal | None:
        """Return the stored proposal to retire `version`, or None when there is none or its MAC fails."""
        found = connection.execute(
            "SELECT proposed_by, proposed_at_ms, mac_version, mac FROM retire_approvals WHERE kind = ? AND version = ?",
            (kind, version),
        ).fetchone()
        if found is None:
            return None
        try:
            expected = self._tag(found["mac_version"], kind, version, found["proposed_by"], found["proposed_at_ms"])
        except KeyVersionError as error:
            # A row without a MAC has mac_version 0, which no keyring contains.
            _logger.error("retirement proposal of %s version %d by %s has no usable MAC (KEK-A version %d: %s); "
                          "ignoring it, so the retirement must be proposed again",
                          kind, version, found["proposed_by"], found["mac_version"], error)
            return None
        if not constant_time_equal(expected, bytes(found["mac"])):
            _logger.error("retirement proposal of %s version %d by %s failed its MAC check; the row was written "
                          "or edited outside the keystore; ignoring it, so the retirement must be proposed again",
                          kind, version, found["proposed_by"])
            return None
        return Proposal(found["proposed_by"], found["proposed_at_ms"])

    @staticmethod
    def clear(connection, kind: str, version: int) -> None:
        connection.execute("DELETE FROM retire_approvals WHERE kind = ? AND version = ?", (kind, version))
