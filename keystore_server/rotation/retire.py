"""Retirement of a KEK version: refused while anything uses it, and only with two security identities.

Only the keystore can see which rows use a KEK-B version, so KEK-B
retirement also goes through here. After the usage check and the second
approval, the keystore requests the retirement from the secret server (under
its keystore identity). The secret server retires the version only if it
stores approvals of two security identities itself.

A retired version's sealed material is deleted from its keyring file. Data
still wrapped under it, such as rows in an older backup, then fails with
"key version N is retired".

The approval commits a "retiring" mark together with the final usage check.
The keyring change (Argon2 and a file write for KEK-A, an RPC for KEK-B)
runs after that commit, so the keystore's write lock is never held across
it. A second transaction then marks the version "retired". A mark left
"retiring" by a crash or an unreachable secret server is finished by the
next `retire` call for that version or by the keystore at start-up.
"""

from __future__ import annotations

import logging
import threading

from keystore_server.rotation import records, retired
from keystore_server.rotation.approvals import ApprovalBook
from keystore_server.rotation.jobs import now_ms
from splitkey.errors import KeyVersionError, PermissionDeniedError, PreconditionError, SplitkeyError

_logger = logging.getLogger(__name__)

# A proposal older than this needs to be made again (milliseconds).
APPROVAL_TTL_MS = 24 * 3600 * 1000
PENDING = "pending-approval"
RETIRED = "retired"
# Seconds between start-up attempts to finish "retiring" marks, while some remain.
RESUME_INTERVAL_S = 5.0
# Errors after which a keyring change will not succeed by retrying it unchanged.
_REJECTIONS = (KeyVersionError, PermissionDeniedError, PreconditionError)


class Retirement:
    def __init__(self, *, db, keyring, link, macs, access=None, kek_b_versions=None):
        self._db = db
        self._keyring = keyring
        self._link = link
        self._access = access
        # keystore_server.rotation.retired.KekBVersions, whose cache entry a KEK-B retirement drops.
        self._kek_b_versions = kek_b_versions
        self._approvals = ApprovalBook(db, keyring, macs)
        self._stop = threading.Event()
        self._resumer: threading.Thread | None = None
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
        """Propose or approve the retirement of `version`; return (state, proposed_by, approved_by).

        A version already marked "retiring" is finished without a new approval.
        """
        states, active = self._states(kind)
        state = states.get(version)
        if state is None:
            raise KeyVersionError(f"{kind} key version {version} does not exist")
        with self._db.read() as connection:
            mark = retired.retirement_state(connection, kind, version)
        if state == RETIRED and mark != retired.RETIRING:
            return RETIRED, "", ""
        if mark == retired.RETIRING:
            _logger.info("finishing the retirement of %s version %d for %s", kind, version, identity)
            self._finish(kind, version)
            return RETIRED, "", identity
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
            # Committed with the usage check above, so no row can start using the
            # version in between: PutKey checks the mark in its own write transaction.
            retired.mark_retiring(connection, kind, version)
        self._finish(kind, version)
        _logger.warning("retired %s version %d, proposed by %s, approved by %s", kind, version, proposed_by, identity)
        return RETIRED, proposed_by, identity

    def _finish(self, kind: str, version: int) -> None:
        """Delete the version's key material, outside any transaction, then mark it "retired".

        A rejection (for example the secret server holding fewer than two
        approvals) drops the "retiring" mark and is raised. Any other failure
        leaves the mark, so the next attempt finishes the retirement.
        """
        try:
            if kind == "kek-a":
                self._keyring.retire_version(version)
            else:
                self._link.retire(version)
        except _REJECTIONS as error:
            with self._db.write() as connection:
                retired.clear_retiring(connection, kind, version)
            self._forget(kind, version)
            _logger.error("retirement of %s version %d rejected, so it is no longer marked retiring: %s",
                          kind, version, error)
            raise
        except SplitkeyError as error:
            _logger.error("retirement of %s version %d stays marked retiring, because its keyring change failed; "
                          "run 'splitkey retire %s %d' again or restart the keystore to finish it: %s: %s",
                          kind, version, kind, version, type(error).__name__, error)
            raise
        with self._db.write() as connection:
            retired.mark_retired(connection, kind, version)
            self._approvals.clear(connection, kind, version)
        self._forget(kind, version)

    def _forget(self, kind: str, version: int) -> None:
        if kind == "kek-b" and self._kek_b_versions is not None:
            self._kek_b_versions.forget(version)

    # -- "retiring" marks left from before a restart -------------------------------

    def finish_unfinished(self) -> int:
        """Try once to finish every retirement still marked "retiring"; return how many remain."""
        with self._db.read() as connection:
            pending = retired.unfinished(connection)
        remaining = 0
        for kind, version in pending:
            try:
                self._finish(kind, version)
            except _REJECTIONS:
                continue  # The mark is gone and _finish logged why.
            except SplitkeyError:
                remaining += 1
                continue
            _logger.warning("finished the retirement of %s version %d left unfinished before a restart",
                            kind, version)
        return remaining

    def start_resume(self) -> None:
        """Finish "retiring" marks in a background thread, retrying until none remain or `stop` is called."""
        self._resumer = threading.Thread(target=self._resume, name="retire-resume", daemon=True)
        self._resumer.start()

    def _resume(self) -> None:
        while not self._stop.is_set():
            try:
                if self.finish_unfinished() == 0:
                    return
            except Exception:  # noqa: BLE001 - a background loop must survive and report
                _logger.exception("finishing unfinished retirements failed; will retry")
            self._stop.wait(RESUME_INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        if self._resumer is not None:
            self._resumer.join(5)
