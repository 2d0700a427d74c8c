"""AdminClient: KEK rotation, retirement, revocation and verify, for the security role.

Rotation runs in phases. `rotate("kek-a")` adds a KEK-A version on the
keystore, activates it and starts the keystore's re-wrap job.
`rotate("kek-b")` adds and activates a KEK-B version on the secret server,
then starts the keystore's KEK-B re-wrap job, which goes through
RewrapShares. The servers choose every version themselves and no key
material travels in any of these calls.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

from client.channels import ServerChannel
from client.retry import call_with_retry
from splitkey.config import ClientConfig, load_client_config
from splitkey.errors import ConfigError, InvalidInputError, PreconditionError, SplitkeyError
from splitkey.v1 import admin_pb2, admin_pb2_grpc

_logger = logging.getLogger(__name__)
KINDS = ("kek-a", "kek-b")


@dataclass(frozen=True)
class AccessResult:
    """The rule as each server stored it; `errors` names a server whose call failed."""

    keystore: admin_pb2.AccessRule | None
    secret: admin_pb2.AccessRule | None
    errors: dict[str, str]


def _request_id() -> str:
    return uuid.uuid4().hex


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


class AdminClient:
    """Calls KeystoreAdmin and SecretAdmin with a security (or auditor) identity."""

    def __init__(self, config: ClientConfig):
        if config.keystore is None or config.secret is None:
            raise ConfigError("the admin client needs both a [keystore] and a [secret] table in its configuration")
        self.config = config
        days = config.cert_expiry_warning_days
        self._keystore = ServerChannel("keystore", config.keystore, admin_pb2_grpc.KeystoreAdminStub,
                                       expiry_warning_days=days)
        self._secret = ServerChannel("secret server", config.secret, admin_pb2_grpc.SecretAdminStub,
                                     expiry_warning_days=days)

    @classmethod
    def from_config(cls, path: str | os.PathLike) -> "AdminClient":
        return cls(load_client_config(path))

    def close(self) -> None:
        self._keystore.close()
        self._secret.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, channel: ServerChannel, method: str, request, *, retry: bool = True):
        timeout = self.config.rpc_timeout_s
        if not retry:
            # Adding a version is not idempotent: a retry after a lost reply would add a second one.
            return call_with_retry(lambda: getattr(channel.stub, method)(request, timeout=timeout),
                                   server=channel.name, policy=_single_attempt(self.config))
        return call_with_retry(lambda: getattr(channel.stub, method)(request, timeout=timeout),
                               server=channel.name, policy=self.config.retry)

    def _server(self, kind: str) -> ServerChannel:
        return self._keystore if _kind(kind) == "kek-a" else self._secret

    # -- versions and rotation ----------------------------------------------------

    def versions(self, kind: str) -> admin_pb2.KekVersionsResponse:
        return self._call(self._server(kind), "KekVersions", admin_pb2.KekVersionsRequest())

    def _check_no_running_job(self, kind: str) -> None:
        """Raise PreconditionError while the keystore runs a re-wrap job of `kind`.

        The keystore enforces this itself for KEK-A. KEK-B versions live on the
        secret server, which cannot see the keystore's jobs, so this client asks
        the keystore first.
        NOTE: a KEK-B version added through SecretAdmin by another tool skips
        this check. The running job then moves its rows on to that version when
        its pass ends.
        """
        for job in self.status(kind):
            if job.state == "running":
                raise PreconditionError(
                    f"{kind} re-wrap job {job.job_id} to version {job.target_version} is still running "
                    f"({job.rows_done} rows done, {job.rows_left} left); wait until 'splitkey rotate status' "
                    f"shows it done, then add or activate another {kind} version"
                )

    def add_version(self, kind: str) -> int:
        """Add a KEK version (state "added") and return its number."""
        if kind == "kek-b":
            self._check_no_running_job(kind)
        before = {item.version for item in self.versions(kind).versions}
        reply = self._call(self._server(kind), "AddKekVersion", admin_pb2.AddKekVersionRequest(request_id=_request_id()),
                           retry=False)
        added = sorted({item.version for item in reply.versions} - before)
        if not added:
            raise SplitkeyError(f"{kind}: the server reported no new version")
        return added[-1]

    def activate_version(self, kind: str, version: int) -> admin_pb2.KekVersionsResponse:
        if kind == "kek-b":
            self._check_no_running_job(kind)
        return self._call(
            self._server(kind), "ActivateKekVersion",
            admin_pb2.ActivateKekVersionRequest(request_id=_request_id(), version=version),
        )

    def start_rewrap(self, kind: str, batch_size: int = 0, max_rows_per_second: int = 0) -> admin_pb2.RewrapJob:
        return self._call(
            self._keystore, "StartRewrap",
            admin_pb2.StartRewrapRequest(kind=_kind(kind), batch_size=batch_size,
                                         max_rows_per_second=max_rows_per_second),
        )

    def rotate(self, kind: str, batch_size: int = 0, max_rows_per_second: int = 0) -> admin_pb2.RewrapJob:
        """Add and activate a new version of `kind`, then start its re-wrap job; return the job.

        Raises PreconditionError, before adding anything, while a re-wrap job
        of `kind` still runs.
        """
        self._check_no_running_job(kind)
        version = self.add_version(kind)
        _logger.info("%s: added version %d", kind, version)
        self.activate_version(kind, version)
        _logger.info("%s: activated version %d", kind, version)
        return self.start_rewrap(kind, batch_size, max_rows_per_second)

    def status(self, kind: str = "") -> list[admin_pb2.RewrapJob]:
        if kind:
            _kind(kind)
        return list(self._call(self._keystore, "RewrapStatus", admin_pb2.RewrapStatusRequest(kind=kind)).jobs)

    def retire(self, kind: str, version: int) -> admin_pb2.RetireKekVersionResponse:
        """Propose, or approve, retiring a version; a second security identity completes it.

        For KEK-B the approval goes to the secret server first, which stores it
        and retires the version only with two security identities' approvals.
        Then the keystore checks that no row uses the version and, on the
        second identity's call, requests the retirement from the secret server.
        """
        if _kind(kind) == "kek-b":
            self.approve_kek_b_retirement(version)
        return self._call(
            self._keystore, "RetireKekVersion",
            admin_pb2.RetireKekVersionRequest(request_id=_request_id(), kind=kind, version=version),
        )

    def approve_kek_b_retirement(self, version: int) -> admin_pb2.RetireKekVersionResponse:
        """Store this identity's approval to retire KEK-B `version` on the secret server; retires nothing."""
        return self._call(
            self._secret, "RetireKekVersion",
            admin_pb2.RetireKekVersionRequest(request_id=_request_id(), kind="kek-b", version=version),
        )

    # -- revoke and deny ----------------------------------------------------------

    def set_access(self, subject_kind: str, subject: str, *, disabled: bool, reason: str) -> AccessResult:
        """Write the same rule on both servers; a failure on one is reported, not hidden."""
        results: dict[str, admin_pb2.AccessRule | None] = {"keystore": None, "secret": None}
        errors: dict[str, str] = {}
        for name, channel in (("keystore", self._keystore), ("secret", self._secret)):
            request = admin_pb2.SetAccessRequest(
                request_id=_request_id(), subject_kind=subject_kind, subject=subject, disabled=disabled, reason=reason
            )
            try:
                results[name] = self._call(channel, "SetAccess", request)
            except SplitkeyError as error:
                errors[name] = str(error)
        return AccessResult(results["keystore"], results["secret"], errors)

    def list_access(self) -> dict[str, list[admin_pb2.AccessRule]]:
        return {
            "keystore": list(self._call(self._keystore, "ListAccess", admin_pb2.ListAccessRequest()).rules),
            "secret": list(self._call(self._secret, "ListAccess", admin_pb2.ListAccessRequest()).rules),
        }

    def verify(self) -> admin_pb2.VerifyResponse:
        return self._call(self._keystore, "Verify", admin_pb2.VerifyRequest())


def _single_attempt(config: ClientConfig):
    from dataclasses import replace

    return replace(config.retry, max_attempts=1)
