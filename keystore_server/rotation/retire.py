"""Retirement of a KEK version: refused while anything uses it, and only with two security identities.

The keystore is the only place that knows which rows use a KEK-B version, so
KEK-B retirement also goes through here: after the usage check and the
second approval, the keystore asks the secret server (under its keystore
identity) to retire the version there.

A retired version's sealed material is deleted from its keyring file. Data
still wrapped under it, such as rows in an older backup, then fails with
"key version N is retired".
"""

from __future__ import annotations

import logging

from keystore_server.rotation import records, retired
from keystore_server.rotation.approvals import ApprovalBook
from keystore_server.rotation.jobs import now_ms
from splitkey.errors import KeyVersionError, PreconditionError

_logger = logging.getLogger(__name__)

# A proposal older than this needs to be made again (milliseconds).
APPROVAL_TTL_MS = 24 * 3600 * 1000
PENDING = "pending-approval"
RETIRED = "retired"


class Retirement:
    def __init__(self, *, db, keyring, link, macs, access=None):
        self._db = db
        self._keyring = keyring
        self._link = link
        self._access = access
        self._approvals = ApprovalBook(db, keyring, macs)
        retired.create_table(db)

    def _states(self, kind: str) -> tuple[dict[int, str], int]:
        if kind == "kek-a":
            return self._keyring.states(), self._keyring.active_version
        reply = self._link.kek_versions()
        return {item.version: item.state for item in reply.versions}, reply.active_version

    def usage(self, connection, kind: str, version: int) -> list[str]:
        """Describe everything that still uses a version; an empty list means it can be retired."""
        total, sample = records.rows_using(connection, kind, version)
        users = []
        if total:
            listed = ", ".join(f"{record_id} (workspace {workspace})" for record_id, workspace in sample)
            more = f" and {total - len(sample)} more" if total > len(sample) else ""
            users.append(f"{total} {'row' if total == 1 else 'rows'}: {listed}{more}")
        if kind == "kek-a":
            if self._access is not None and self._access.mac_version() == version:
                users.append("the access rules' MAC")
            has_modes = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workspaces'"
            ).fetchone()
            if has_modes:
                modes = connection.execute(
                    "SELECT COUNT(*) FROM workspaces WHERE mac_version = ?", (version,)
                ).fetchone()[0]
                if modes:
                    users.append(f"{modes} workspace mode {'row' if modes == 1 else 'rows'}")
        return users

    def retire(self, kind: str, version: int, identity: str) -> tuple[str, str, str]:
        """Propose or approve the retirement of `version`; return (state, proposed_by, approved_by)."""
        states, active = self._states(kind)
        state = states.get(version)
        if state is None:
            raise KeyVersionError(f"{kind} key version {version} does not exist")
        if state == RETIRED:
            return RETIRED, "", ""
        if version == active:
            raise PreconditionError(
                f"{kind} key version {version} is active; run 'splitkey rotate {kind}' first, then retire it"
            )
        with self._db.write() as connection:
            users = self.usage(connection, kind, version)
            if users:
                raise PreconditionError(
                    f"{kind} key version {version} is still in use by {'; '.join(users)}; "
                    f"run 'splitkey rotate {kind}' (or wait for its re-wrap job) and retire it afterwards"
                )
            proposal = self._approvals.pending(connection, kind, version)
            fresh = proposal is not None and now_ms() - proposal.proposed_at_ms < APPROVAL_TTL_MS
            if not fresh or proposal.proposed_by == identity:
                self._approvals.propose(connection, kind, version, identity)
                _logger.info("retirement of %s version %d proposed by %s", kind, version, identity)
                return PENDING, identity, ""
            proposed_by = proposal.proposed_by
            # The mark and the keyring change happen inside the transaction of the
            # usage check above, so no row can start using the version in between:
            # PutKey checks the mark in its own write transaction.
            retired.mark_retired(connection, kind, version)
            if kind == "kek-a":
                self._keyring.retire_version(version)
            else:
                self._link.retire(version)
            self._approvals.clear(connection, kind, version)
        _logger.warning("retired %s version %d, proposed by %s, approved by %s", kind, version, proposed_by, identity)
        return RETIRED, proposed_by, identity
