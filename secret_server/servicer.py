"""Secret-server RPC handlers: WrapShare and UnwrapShare."""

from __future__ import annotations

import logging

import nacl.public
import nacl.signing

from splitkey import validation as validate
from secret_server.replay import ReplayGuard
from secret_server.store import SecretStore
from splitkey import record
from splitkey.errors import IntegrityError, InvalidInputError, PermissionDeniedError, PreconditionError
from splitkey.grant import check_grant
from splitkey.context import validate_record_id, validate_workspace
from splitkey.rpc.guard import current_identity, note_audit
from splitkey.v1 import secret_pb2, secret_pb2_grpc

_logger = logging.getLogger(__name__)


class SecretServicer(secret_pb2_grpc.SecretServerServicer):
    def __init__(self, *, deployment: str, store: SecretStore, keyring, verify_key: nacl.signing.VerifyKey,
                 deny=None):
        self._deployment = deployment
        # secret_server.deny.SecretDenyRules, checked by UnwrapShare; None disables the check.
        self._deny = deny
        self._store = store
        self._keyring = keyring
        self._verify_key = verify_key
        self._replay = ReplayGuard()

    def WrapShare(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        key_context = validate.context_of(request, self._deployment)
        note_audit(
            request_id=request.request_id, workspace=key_context.workspace, provider=key_context.provider,
            record_id=key_context.record_id, context_hash=key_context.digest().hex(),
        )
        validate.may_write_workspace(identity, key_context.workspace)
        if len(request.share_b) != record.SHARE_BYTES:
            raise InvalidInputError(f"share_b must be exactly {record.SHARE_BYTES} bytes, got {len(request.share_b)}")
        if self._store.is_tombstoned(key_context.record_id):
            raise PreconditionError(f"record {key_context.record_id} was replaced or removed; use a new record_id")
        version = self._keyring.active_version
        wrap_b = record.wrap_share(self._keyring.key(version), version, request.share_b, key_context, "share-b")
        _logger.info(
            "wrapped share_b for record %s (workspace %s) under KEK-B version %d for %s",
            key_context.record_id, key_context.workspace, version, identity.uri,
        )
        return secret_pb2.WrapShareResponse(wrap_b=wrap_b, kek_b_version=version)

    def UnwrapShare(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        key_context = validate.context_of(request, self._deployment)
        note_audit(
            request_id=request.request_id, workspace=key_context.workspace, provider=key_context.provider,
            record_id=key_context.record_id, context_hash=key_context.digest().hex(),
        )
        reply_key = validate.reply_key(request.reply_key)
        version = validate.wrap_b(request.wrap_b)
        if not request.HasField("grant"):
            raise PermissionDeniedError("grant is missing; pass the grant returned by Keystore.FetchKey")
        check_grant(
            self._verify_key,
            request.grant,
            caller_identity=identity.uri,
            request_id=request.request_id,
            context_hash=key_context.digest(),
            wrap_b=request.wrap_b,
            reply_key=reply_key,
        )
        if self._store.is_tombstoned(key_context.record_id):
            raise PreconditionError(f"record {key_context.record_id} was replaced or removed and cannot be used")
        if self._deny is not None:
            # The requested workspace is signed in the grant; checking it as well keeps a
            # revoked workspace revoked when it is served by a platform key.
            workspaces = (key_context.workspace, request.grant.requested_workspace)
            self._deny.check(record_id=key_context.record_id, workspaces=workspaces, identity=identity.uri)
        kek = self._keyring.key(version)
        self._replay.claim(request.request_id, request.grant.signature)
        try:
            share_b = record.unwrap_share(kek, request.wrap_b, key_context, "share-b")
        except IntegrityError:
            _logger.error("wrap_b failed authentication for record %s, request %s", key_context.record_id, request.request_id)
            raise
        sealed = nacl.public.SealedBox(nacl.public.PublicKey(reply_key)).encrypt(share_b)
        del share_b
        note_audit(key_versions=f"b{version}")
        _logger.info(
            "released share_b of record %s (workspace %s) to %s, request %s",
            key_context.record_id, key_context.workspace, identity.uri, request.request_id,
        )
        return secret_pb2.UnwrapShareResponse(sealed_share_b=sealed)

    def Tombstone(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        record_id = validate_record_id(request.record_id)
        workspace = validate_workspace(request.workspace)
        if request.reason not in ("replaced", "removed"):
            raise InvalidInputError("reason must be 'replaced' or 'removed'")
        note_audit(workspace=workspace, record_id=record_id)
        self._store.add_tombstone(record_id, workspace, request.reason, identity.uri)
        _logger.info("tombstoned record %s of workspace %s (%s) for %s", record_id, workspace, request.reason, identity.uri)
        return secret_pb2.TombstoneResponse()
