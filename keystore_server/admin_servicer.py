"""KeystoreAdmin RPC handlers: KEK-A versions, re-wrap jobs, retirement, access rules, verify."""

from __future__ import annotations

import logging

from keystore_server.access import KeystoreAccess
from keystore_server.rotation import records
from keystore_server.rotation.engine import RewrapEngine, validate_kind
from keystore_server.rotation.jobs import Job
from keystore_server.rotation.retire import PENDING, Retirement
from keystore_server.rows import RowMac
from splitkey import validation as validate
from splitkey.access_rpc import AccessRuleHandlers
from splitkey.errors import InvalidInputError, SplitkeyError
from splitkey.rpc.guard import current_identity, note_audit
from splitkey.v1 import admin_pb2, admin_pb2_grpc

_logger = logging.getLogger(__name__)
_SAMPLE = 20


def job_message(job: Job, rows_left: int) -> admin_pb2.RewrapJob:
    elapsed_s = max((job.updated_at_ms - job.started_at_ms) / 1000, 0.001)
    return admin_pb2.RewrapJob(
        job_id=job.job_id, kind=job.kind, target_version=job.target_version, state=job.state,
        rows_total=job.rows_total, rows_done=job.rows_done, rows_left=rows_left,
        rows_per_second=job.rows_done / elapsed_s, started_at_ms=job.started_at_ms,
        updated_at_ms=job.updated_at_ms, last_error=job.last_error, batch_size=job.batch_size,
        max_rows_per_second=job.max_rows_per_second,
    )


class KeystoreAdminServicer(AccessRuleHandlers, admin_pb2_grpc.KeystoreAdminServicer):
    """KeystoreAdmin; SetAccess and ListAccess come from AccessRuleHandlers over the keystore's rules."""

    def __init__(self, *, deployment: str, db, keyring, link, access: KeystoreAccess, engine: RewrapEngine,
                 kek_b_versions=None):
        self._deployment = deployment
        self._db = db
        self._keyring = keyring
        self._link = link
        self._access = access
        self._access_rules = access
        self._engine = engine
        self._macs = RowMac(keyring, deployment)
        self.retirement = Retirement(db=db, keyring=keyring, link=link, macs=self._macs, access=access,
                                     kek_b_versions=kek_b_versions)

    # -- KEK-A versions ----------------------------------------------------------

    def _versions(self) -> admin_pb2.KekVersionsResponse:
        counts = records.version_counts(self._db.connection(), "kek-a")
        return admin_pb2.KekVersionsResponse(
            kind="kek-a",
            active_version=self._keyring.active_version,
            versions=[
                admin_pb2.KekVersion(version=version, state=state, rows=counts.get(version, 0))
                for version, state in self._keyring.states().items()
            ],
        )

    def AddKekVersion(self, request, context):
        validate.request_id(request.request_id)
        self._engine.check_no_running_job("kek-a")
        version = self._keyring.add_version()
        note_audit(request_id=request.request_id, key_versions=f"a{version}")
        _logger.warning("KEK-A version %d added by %s", version, current_identity().uri)
        return self._versions()

    def ActivateKekVersion(self, request, context):
        validate.request_id(request.request_id)
        note_audit(request_id=request.request_id, key_versions=f"a{request.version}")
        self._engine.check_no_running_job("kek-a")
        self._keyring.activate_version(request.version)
        _logger.warning("KEK-A version %d activated by %s", request.version, current_identity().uri)
        return self._versions()

    def KekVersions(self, request, context):
        return self._versions()

    # -- re-wrap jobs ------------------------------------------------------------

    def StartRewrap(self, request, context):
        kind = validate_kind(request.kind)
        job = self._engine.start(kind, request.batch_size, request.max_rows_per_second)
        note_audit(job_id=job.job_id, key_versions=f"{kind} v{job.target_version}")
        return job_message(job, self._engine.rows_left(job))

    def RewrapStatus(self, request, context):
        kinds = [validate_kind(request.kind)] if request.kind else ["kek-a", "kek-b"]
        jobs = []
        for kind in kinds:
            job = self._engine.jobs.latest(kind)
            if job is not None:
                jobs.append(job_message(job, self._engine.rows_left(job)))
        return admin_pb2.RewrapStatusResponse(jobs=jobs)

    def RetireKekVersion(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        kind = validate_kind(request.kind)
        if request.version < 1:
            raise InvalidInputError("version must be a KEK version number, 1 or higher")
        note_audit(request_id=request.request_id, key_versions=f"{kind} v{request.version}")
        state, proposed_by, approved_by = self.retirement.retire(kind, request.version, identity.uri)
        note_audit(reason=_retire_audit_reason(kind, request.version, state, proposed_by, approved_by))
        return admin_pb2.RetireKekVersionResponse(state=state, proposed_by=proposed_by, approved_by=approved_by)

    # -- verify ------------------------------------------------------------------

    def Verify(self, request, context):
        kek_b = self._link.kek_versions()
        held = {
            "kek-a": self._keyring.states(),
            "kek-b": {item.version: item.state for item in kek_b.versions},
        }
        response = admin_pb2.VerifyResponse()
        connection = self._db.connection()
        response.rows = connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        for kind in ("kek-a", "kek-b"):
            for version, rows in sorted(records.version_counts(connection, kind).items()):
                state = held[kind].get(version, "missing")
                entry = admin_pb2.VersionCount(kind=kind, version=version, rows=rows, state=state)
                if state in ("retired", "missing"):
                    _total, sample = records.rows_using(connection, kind, version, _SAMPLE)
                    entry.sample_record_ids.extend(record_id for record_id, _workspace in sample)
                    response.unreadable_rows += rows
                response.versions.append(entry)
        self._check_macs(response)
        return response

    def _check_macs(self, response: admin_pb2.VerifyResponse) -> None:
        after = ""
        while True:
            batch = records.all_rows(self._db.connection(), after, 1000)
            if not batch:
                return
            for row in batch:
                try:
                    valid = self._macs.verify(row)
                except SplitkeyError:
                    # A retired or missing KEK-A version is counted as unreadable above.
                    continue
                if not valid:
                    response.tampered_rows += 1
                    if len(response.tampered_record_ids) < _SAMPLE:
                        response.tampered_record_ids.append(row.record_id)
            after = batch[-1].record_id


def _retire_audit_reason(kind: str, version: int, state: str, proposed_by: str, approved_by: str) -> str:
    """Describe a RetireKekVersion call for its audit entry: a proposal, an approval, or no change."""
    if state == PENDING:
        return f"proposal to retire {kind} version {version} by {proposed_by}; a second security identity must approve"
    if approved_by:
        return f"approval to retire {kind} version {version}, proposed by {proposed_by}; the version is retired"
    return f"{kind} version {version} was already retired"
