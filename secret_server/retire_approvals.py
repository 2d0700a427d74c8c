"""Approvals of security identities to retire a KEK-B version, as the secret server itself records them.

Retiring a KEK-B version deletes its sealed material for good, so the secret
server does not take the keystore's word that two security identities agreed.
Each security identity that runs `splitkey retire kek-b N` also sends its
approval here. The secret server retires the version only when the keystore
confirms that no row uses it. It also needs stored approvals of two distinct
security identities, each younger than 24 hours.

Each approval row carries an HMAC (128 bits, hex) under a key derived from
the KEK-B version active when it was written, over the deployment, the
version, the identity and the time. A row inserted or edited in the database
without KEK-B fails the check, is logged as an error and does not count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from splitkey import table_mac
from splitkey.errors import KeyVersionError
from splitkey.secret import constant_time_equal
from splitkey.sqlite import Database

_logger = logging.getLogger(__name__)

# An approval older than this no longer counts and must be given again (milliseconds).
APPROVAL_TTL_MS = 24 * 3600 * 1000
REQUIRED_APPROVALS = 2
_PURPOSE = "retire-approvals"

SCHEMA = """
CREATE TABLE IF NOT EXISTS retire_approvals (
    version INTEGER NOT NULL,
    -- SPIFFE URI of the security identity that approved.
    identity TEXT NOT NULL,
    approved_at_ms INTEGER NOT NULL,
    mac_version INTEGER NOT NULL,
    -- Hex of the first 16 bytes of the HMAC-SHA256.
    mac TEXT NOT NULL,
    PRIMARY KEY (version, identity)
);
"""


@dataclass(frozen=True)
class Approval:
    identity: str
    approved_at_ms: int


class RetireApprovals:
    """Signed approval rows in the secret server's database; `keyring` is the KEK-B LiveKeyring."""

    def __init__(self, db: Database, keyring, deployment: str):
        self._db = db
        self._keyring = keyring
        self._deployment = deployment
        db.connection().executescript(SCHEMA)

    def _tag(self, mac_version: int, version: int, identity: str, approved_at_ms: int) -> str:
        key = table_mac.derive_key(self._keyring, mac_version, purpose=_PURPOSE, label="secret",
                                   deployment=self._deployment)
        return table_mac.tag_hex(
            key, (b"splitkey-kek-b-retire-approval-v1", str(version).encode(), identity.encode(),
                  str(approved_at_ms).encode()),
        )

    def approve(self, version: int, identity: str) -> list[Approval]:
        """Store (or refresh) the approval of `identity`; return every valid approval of `version`, oldest first."""
        now = int(time.time() * 1000)
        mac_version = self._keyring.active_version
        mac = self._tag(mac_version, version, identity, now)
        with self._db.write() as connection:
            connection.execute(
                "INSERT INTO retire_approvals (version, identity, approved_at_ms, mac_version, mac) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (version, identity) DO UPDATE SET "
                "approved_at_ms = excluded.approved_at_ms, mac_version = excluded.mac_version, mac = excluded.mac",
                (version, identity, now, mac_version, mac),
            )
        return self.valid(version)

    def valid(self, version: int) -> list[Approval]:
        """Return the approvals of `version` with a valid MAC that are younger than the TTL, oldest first."""
        now = int(time.time() * 1000)
        found = self._db.connection().execute(
            "SELECT identity, approved_at_ms, mac_version, mac FROM retire_approvals WHERE version = ? "
            "ORDER BY approved_at_ms", (version,),
        ).fetchall()
        approvals = []
        for row in found:
            if not self._authentic(version, row):
                continue
            if now - row["approved_at_ms"] >= APPROVAL_TTL_MS:
                continue
            approvals.append(Approval(row["identity"], row["approved_at_ms"]))
        return approvals

    def _authentic(self, version: int, row) -> bool:
        try:
            expected = self._tag(row["mac_version"], version, row["identity"], row["approved_at_ms"])
        except KeyVersionError as error:
            _logger.error("approval to retire KEK-B version %d by %s has no usable MAC (KEK-B version %d: %s); "
                          "ignoring it", version, row["identity"], row["mac_version"], error)
            return False
        if not constant_time_equal(expected, str(row["mac"])):
            _logger.error("approval to retire KEK-B version %d by %s failed its MAC check; the row was written "
                          "or edited outside the secret server; ignoring it", version, row["identity"])
            return False
        return True

    def clear(self, version: int) -> None:
        with self._db.write() as connection:
            connection.execute("DELETE FROM retire_approvals WHERE version = ?", (version,))
