"""SecretAdmin RPC handlers: blind share re-wrap for the keystore, KEK-B versions and retirement, deny rules.

RewrapShares receives, per record, only the context, wrap_b and a random r.
It unwraps share_b, XORs it with r and wraps the result under the active
KEK-B version. It never receives share_a, a DEK or a ciphertext, and it
returns nothing but wrapped blobs, so it releases no share.
"""

from __future__ import annotations

import logging

from secret_server.deny import SecretDenyRules
from secret_server.retire_approvals import REQUIRED_APPROVALS, RetireApprovals
from secret_server.store import SecretStore
from splitkey import record
from splitkey import validation as validate
from splitkey.access_rpc import AccessRuleHandlers
from splitkey.context import Context
from splitkey.errors import InvalidInputError, KeyVersionError, PreconditionError, SplitkeyError
from splitkey.rpc.guard import current_identity, note_audit
from splitkey.v1 import admin_pb2, admin_pb2_grpc

_logger = logging.getLogger(__name__)
# Items per RewrapShares call; keeps a request under the 64 KiB message limit.
MAX_REWRAP_ITEMS = 256


class SecretAdminServicer(AccessRuleHandlers, admin_pb2_grpc.SecretAdminServicer):
    """SecretAdmin; SetAccess and ListAccess come from AccessRuleHandlers over the deny rules."""

    def __init__(self, *, deployment: str, keyring, deny: SecretDenyRules, approvals: RetireApprovals,
                 store: SecretStore):
        self._deployment = deployment
        self._keyring = keyring
        self._deny = deny
        self._access_rules = deny
        self._approvals = approvals
        self._store = store

    def _versions(self) -> admin_pb2.KekVersionsResponse:
        return admin_pb2.KekVersionsResponse(
            kind="kek-b",
            active_version=self._keyring.active_version,
            versions=[admin_pb2.KekVersion(version=v, state=s) for v, s in self._keyring.states().items()],
        )

    def RewrapShares(self, request, context):
        validate.request_id(request.request_id)
        note_audit(request_id=request.request_id)
        if not 1 <= len(request.items) <= MAX_REWRAP_ITEMS:
            raise InvalidInputError(f"items must hold 1 to {MAX_REWRAP_ITEMS} records, got {len(request.items)}")
        version = self._keyring.active_version
        active_key = self._keyring.key(version)
        results = []
        for index, item in enumerate(request.items):
            key_context = self._item_context(item, index)
            try:
                share_b = record.unwrap_share(self._keyring.key(record.wrap_version(item.wrap_b)), item.wrap_b,
                                              key_context, "share-b")
            except SplitkeyError as error:
                # Reported per record so one bad row does not stop the batch; the message names no bytes.
                message = str(error) or "integrity check failed"
                _logger.error("RewrapShares: record %s not re-wrapped: %s", key_context.record_id, message)
                results.append(admin_pb2.RewrapResult(record_id=key_context.record_id, error=message))
                continue
            refreshed = record.xor_bytes(share_b, item.r)
            del share_b
            wrap_b = record.wrap_share(active_key, version, refreshed, key_context, "share-b")
            del refreshed
            results.append(admin_pb2.RewrapResult(record_id=key_context.record_id, wrap_b=wrap_b, kek_b_version=version))
        _logger.info("re-wrapped %d shares under KEK-B version %d for %s", len(results), version,
                     current_identity().uri)
        return admin_pb2.RewrapSharesResponse(results=results)

    def _item_context(self, item, index: int) -> Context:
        where = f"items[{index}]"
        try:
            key_context = validate.context_of(item, self._deployment)
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}: {error}") from None
        if len(item.r) != record.SHARE_BYTES:
            raise InvalidInputError(f"{where}.r must be exactly {record.SHARE_BYTES} random bytes, got {len(item.r)}")
        try:
            record.wrap_version(item.wrap_b)
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}: {error}") from None
        return key_context

    # -- KEK-B versions ----------------------------------------------------------

    def AddKekVersion(self, request, context):
        validate.request_id(request.request_id)
        version = self._keyring.add_version()
        note_audit(request_id=request.request_id, key_versions=f"b{version}")
        _logger.warning("KEK-B version %d added by %s", version, current_identity().uri)
        return self._versions()

    def ActivateKekVersion(self, request, context):
        validate.request_id(request.request_id)
        note_audit(request_id=request.request_id, key_versions=f"b{request.version}")
        self._keyring.activate_version(request.version)
        # New deny rules and tombstones are signed under the new version from now on; re-sign their heads too.
        self._deny.resign()
        self._store.resign()
        _logger.warning("KEK-B version %d activated by %s", request.version, current_identity().uri)
        return self._versions()

    def KekVersions(self, request, context):
        return self._versions()

    def RetireKekVersion(self, request, context):
        """Store a security identity's approval, or retire the version when the keystore confirms it.

        A security caller adds its approval. The keystore calls after its usage
        check found no row under the version. The version is retired only on
        the keystore's call, and only with approvals of two distinct security
        identities stored here, so neither the keystore nor one security
        identity can destroy a KEK-B version alone.
        """
        identity = current_identity()
        validate.request_id(request.request_id)
        note_audit(request_id=request.request_id, key_versions=f"b{request.version}")
        if request.kind != "kek-b":
            raise InvalidInputError("kind must be 'kek-b' on the secret server")
        state = self._keyring.states().get(request.version)
        if state is None:
            raise KeyVersionError(f"kek-b key version {request.version} does not exist")
        if state == "retired":
            note_audit(reason=f"kek-b version {request.version} was already retired")
            return admin_pb2.RetireKekVersionResponse(state="retired")
        if request.version == self._keyring.active_version:
            raise PreconditionError(
                f"kek-b key version {request.version} is active; run 'splitkey rotate kek-b' first, then retire it"
            )
        if identity.role == "security":
            return self._approve_retirement(request.version, identity.uri)
        return self._retire_confirmed(request.version, identity.uri)

    def _approve_retirement(self, version: int, identity: str) -> admin_pb2.RetireKekVersionResponse:
        approvals = self._approvals.approve(version, identity)
        names = [approval.identity for approval in approvals]
        note_audit(reason=f"approval to retire kek-b version {version} by {identity}; "
                          f"{len(names)} of {REQUIRED_APPROVALS} approvals stored")
        _logger.warning("retirement of KEK-B version %d approved by %s (%d of %d approvals)",
                        version, identity, len(names), REQUIRED_APPROVALS)
        state = "approved" if len(names) >= REQUIRED_APPROVALS else "pending-approval"
        others = [name for name in names if name != identity]
        return admin_pb2.RetireKekVersionResponse(
            state=state, proposed_by=others[0] if others else identity, approved_by=identity if others else "",
        )

    def _retire_confirmed(self, version: int, keystore: str) -> admin_pb2.RetireKekVersionResponse:
        names = [approval.identity for approval in self._approvals.valid(version)]
        if len(names) < REQUIRED_APPROVALS:
            _logger.error("%s asked to retire KEK-B version %d with %d of %d security approvals stored here; rejected",
                          keystore, version, len(names), REQUIRED_APPROVALS)
            approved = f" (approved by {', '.join(names)})" if names else ""
            raise PreconditionError(
                f"kek-b key version {version} needs the approval of {REQUIRED_APPROVALS} security identities on the "
                f"secret server within 24 hours and has {len(names)}{approved}; run 'splitkey retire kek-b "
                f"{version}' as another security identity"
            )
        if self._deny.mac_version() == version:
            raise PreconditionError(f"key version {version} still signs the deny rules; activate another first")
        if self._store.mac_version() == version:
            raise PreconditionError(f"key version {version} still signs the tombstones; activate another first")
        self._keyring.retire_version(version)
        self._approvals.clear(version)
        note_audit(reason=f"kek-b version {version} retired on confirmation by {keystore}, "
                          f"approved by {' and '.join(names)}")
        _logger.warning("KEK-B version %d retired on confirmation by %s, approved by %s",
                        version, keystore, ", ".join(names))
        return admin_pb2.RetireKekVersionResponse(state="retired", proposed_by=names[0], approved_by=names[1])
