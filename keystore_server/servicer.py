"""Keystore RPC handlers: keys (PutKey, RemoveKey, ListKeys), use (FetchKey), workspaces (SetMode, GetWorkspace)."""

from __future__ import annotations

import hashlib
import logging
import time

import nacl.public
import nacl.signing

from keystore_server.modes import MODE_NAMES, MODE_VALUES, ModeBook
from keystore_server.rotation.retired import KekBVersions
from keystore_server.rows import ACTIVE, RecordRow, RowMac
from keystore_server.store import KeystoreStore
from splitkey import record
from splitkey import validation as validate
from splitkey.context import PLATFORM_WORKSPACE
from splitkey.errors import IntegrityError, InvalidInputError, NotFoundError
from splitkey.grant import issue_grant
from splitkey.rpc.guard import current_identity, note_audit
from splitkey.v1 import keystore_pb2, keystore_pb2_grpc

_logger = logging.getLogger(__name__)
KEY_DIGEST_BYTES = 32


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeystoreServicer(keystore_pb2_grpc.KeystoreServicer):
    def __init__(self, *, deployment: str, store: KeystoreStore, keyring, signing_key: nacl.signing.SigningKey,
                 kek_b_versions: KekBVersions, on_tombstone=None, access=None):
        self._deployment = deployment
        self._kek_b_versions = kek_b_versions
        # keystore_server.access.KeystoreAccess, checked by FetchKey; None disables the check.
        self._access = access
        self._store = store
        self._keyring = keyring
        self._macs = RowMac(keyring, deployment)
        self._modes = ModeBook(store, self._macs, keyring)
        self._signing_key = signing_key
        # Called after a commit that queued a tombstone, to deliver it promptly.
        self._on_tombstone = on_tombstone or (lambda: None)

    @staticmethod
    def _digest(request) -> bytes:
        """Digest of a write request for idempotency, over every field but share_a.

        Leaving share_a out means the stored digest is no function of a share,
        and an unkeyed hash keeps the digest stable across KEK-A rotations, so a
        retry after an activation still matches. The record id and ciphertext
        still differ between two different adds.
        """
        copy = type(request)()
        copy.CopyFrom(request)
        if copy.DESCRIPTOR.fields_by_name.get("share_a") is not None:
            copy.ClearField("share_a")
        return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()

    # -- keys ------------------------------------------------------------------

    def PutKey(self, request, context):
        identity = current_identity()
        key_context = validate.put_key(request, self._deployment)
        note_audit(
            request_id=request.request_id, workspace=key_context.workspace, provider=key_context.provider,
            record_id=key_context.record_id, context_hash=key_context.digest().hex(),
        )
        validate.may_write_workspace(identity, key_context.workspace)
        if len(request.key_digest) != KEY_DIGEST_BYTES:
            raise InvalidInputError(f"key_digest must be the {KEY_DIGEST_BYTES}-byte SHA-256 fingerprint input")
        kek_b_version = record.wrap_version(request.wrap_b)
        self._kek_b_versions.check_usable(kek_b_version)
        version = self._keyring.active_version
        wrap_a = record.wrap_share(self._keyring.key(version), version, request.share_a, key_context, "share-a")
        row = self._macs.sign(
            RecordRow(
                record_id=key_context.record_id,
                workspace=key_context.workspace,
                provider=key_context.provider,
                status=ACTIVE,
                ciphertext=request.ciphertext,
                wrap_a=wrap_a,
                wrap_b=request.wrap_b,
                kek_a_version=version,
                kek_b_version=kek_b_version,
                key_hint=request.key_hint,
                created_at_ms=_now_ms(),
                fingerprint=self._macs.fingerprint(request.key_digest),
            )
        )
        note_audit(key_versions=f"a{row.kek_a_version},b{row.kek_b_version}")

        def respond(replaced_record_id: str) -> bytes:
            return keystore_pb2.PutKeyResponse(
                record_id=row.record_id,
                kek_a_version=row.kek_a_version,
                kek_b_version=row.kek_b_version,
                replaced_record_id=replaced_record_id,
            ).SerializeToString()

        response = self._store.put_record(
            row, request_id=request.request_id, actor=identity.uri, digest=self._digest(request),
            sign=self._macs.sign, respond=respond,
            sign_mode=None if key_context.workspace == PLATFORM_WORKSPACE else self._modes.sign,
            # A retirement's usage check runs in a write transaction too, so it
            # either counts this row or has already marked the version retired.
            check=lambda connection: self._kek_b_versions.check_write(
                connection, kek_a_version=row.kek_a_version, kek_b_version=row.kek_b_version
            ),
        )
        reply = keystore_pb2.PutKeyResponse.FromString(response)
        if reply.replaced_record_id:
            self._on_tombstone()
        _logger.info(
            "stored record %s for workspace %s provider %s by %s (request %s)",
            reply.record_id, key_context.workspace, key_context.provider, identity.uri, request.request_id,
        )
        return reply

    def RemoveKey(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        workspace = validate.workspace(request.workspace)
        provider = validate.model(request.provider)
        note_audit(request_id=request.request_id, workspace=workspace, provider=provider)
        validate.may_write_workspace(identity, workspace)

        def respond(removed_record_id: str) -> bytes:
            return keystore_pb2.RemoveKeyResponse(removed_record_id=removed_record_id).SerializeToString()

        response = self._store.remove_record(
            workspace, provider, request_id=request.request_id, actor=identity.uri, digest=self._digest(request),
            sign=self._macs.sign, respond=respond,
        )
        reply = keystore_pb2.RemoveKeyResponse.FromString(response)
        note_audit(record_id=reply.removed_record_id)
        self._on_tombstone()
        _logger.info("removed record %s (workspace %s provider %s) by %s", reply.removed_record_id, workspace, provider,
                     identity.uri)
        return reply

    def ListKeys(self, request, context):
        workspace = validate.workspace(request.workspace)
        note_audit(workspace=workspace)
        rows = self._store.records_of(workspace)
        if not rows:
            raise NotFoundError(f"workspace '{workspace}' has no keys")
        return keystore_pb2.ListKeysResponse(
            keys=[
                keystore_pb2.KeyInfo(
                    record_id=row.record_id,
                    provider=row.provider,
                    key_hint=row.key_hint,
                    status=row.status,
                    kek_a_version=row.kek_a_version,
                    kek_b_version=row.kek_b_version,
                    created_at_ms=row.created_at_ms,
                    last_used_at_ms=last_used,
                    fingerprint=row.fingerprint,
                )
                for row, last_used in rows
            ]
        )

    # -- use -------------------------------------------------------------------

    def FetchKey(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        workspace = validate.workspace(request.workspace)
        provider = validate.model(request.model)
        note_audit(request_id=request.request_id, workspace=workspace, provider=provider)
        reply_key = validate.reply_key(request.reply_key)
        row, resolution = self._modes.resolve(workspace, provider)
        if self._access is not None:
            self._access.check(record_id=row.record_id, workspaces=(workspace, row.workspace), identity=identity.uri)
        note_audit(key_versions=f"a{row.kek_a_version},b{row.kek_b_version}")
        if not self._macs.verify(row):
            _logger.error("row MAC check failed for record %s (workspace %s)", row.record_id, row.workspace)
            raise IntegrityError()
        try:
            key_context = row.context(self._deployment)
        except InvalidInputError as error:
            # A stored row with a malformed id is corruption, not the caller's mistake.
            _logger.error("stored record %r has an invalid field: %s", row.record_id, error)
            raise IntegrityError() from None
        note_audit(record_id=row.record_id, context_hash=key_context.digest().hex())
        try:
            share_a = record.unwrap_share(self._keyring.key(row.kek_a_version), row.wrap_a, key_context, "share-a")
        except IntegrityError:
            _logger.error("wrap_a failed authentication for record %s", row.record_id)
            raise
        sealed_share_a = nacl.public.SealedBox(nacl.public.PublicKey(reply_key)).encrypt(share_a)
        del share_a
        grant = issue_grant(
            self._signing_key,
            worker_identity=identity.uri,
            request_id=request.request_id,
            context_hash=key_context.digest(),
            wrap_b=row.wrap_b,
            reply_key=reply_key,
            requested_workspace=workspace,
        )
        self._store.mark_used(row.record_id)
        _logger.info(
            "released record %s (workspace %s provider %s, %s) to %s, request %s",
            row.record_id, row.workspace, row.provider, keystore_pb2.Resolution.Name(resolution), identity.uri,
            request.request_id,
        )
        return keystore_pb2.FetchKeyResponse(
            context=key_context.to_proto(),
            ciphertext=row.ciphertext,
            wrap_b=row.wrap_b,
            sealed_share_a=sealed_share_a,
            grant=grant,
            resolution=resolution,
        )

    # -- workspaces --------------------------------------------------------------

    def SetMode(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        workspace = validate.workspace(request.workspace)
        note_audit(request_id=request.request_id, workspace=workspace)
        if workspace == PLATFORM_WORKSPACE:
            raise InvalidInputError(f"workspace '{PLATFORM_WORKSPACE}' contains the platform's keys and has no mode")
        if request.mode not in MODE_NAMES:
            raise InvalidInputError("mode must be API_MODE_PLATFORM or API_MODE_BYOK")
        mode = MODE_NAMES[request.mode]
        self._store.set_mode(
            workspace, mode, request_id=request.request_id, actor=identity.uri, digest=self._digest(request),
            sign_mode=self._modes.sign, respond=lambda: b"",
        )
        _logger.info("workspace %s set to %s mode by %s", workspace, mode, identity.uri)
        return self._workspace_info(workspace)

    def GetWorkspace(self, request, context):
        workspace = validate.workspace(request.workspace)
        note_audit(workspace=workspace)
        if workspace != PLATFORM_WORKSPACE and not self._store.has_workspace(workspace):
            raise NotFoundError(f"workspace '{workspace}' is unknown")
        return self._workspace_info(workspace)

    def _workspace_info(self, workspace: str) -> keystore_pb2.WorkspaceInfo:
        mode = keystore_pb2.API_MODE_PLATFORM if workspace == PLATFORM_WORKSPACE else MODE_VALUES[self._modes.mode_of(workspace)]
        return keystore_pb2.WorkspaceInfo(
            workspace=workspace, mode=mode, providers=self._store.active_providers(workspace)
        )
