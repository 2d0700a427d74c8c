"""Keystore RPC handlers: PutKey, FetchKey, ListKeys."""

from __future__ import annotations

import logging
import time

import nacl.public
import nacl.signing

from splitkey import validation as validate
from keystore_server.rows import ACTIVE, RecordRow, RowMac
from keystore_server.store import KeystoreStore
from splitkey import record
from splitkey.errors import IntegrityError, NotFoundError
from splitkey.grant import issue_grant
from splitkey.rpc.guard import current_identity
from splitkey.v1 import keystore_pb2, keystore_pb2_grpc

_logger = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeystoreServicer(keystore_pb2_grpc.KeystoreServicer):
    def __init__(self, *, deployment: str, store: KeystoreStore, keyring, signing_key: nacl.signing.SigningKey):
        self._deployment = deployment
        self._store = store
        self._keyring = keyring
        self._macs = RowMac(keyring, deployment)
        self._signing_key = signing_key

    def PutKey(self, request, context):
        identity = current_identity()
        key_context = validate.put_key(request, self._deployment)
        validate.may_write_workspace(identity, key_context.workspace)
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
                kek_b_version=record.wrap_version(request.wrap_b),
                key_hint=request.key_hint,
                created_at_ms=_now_ms(),
            )
        )

        def respond(replaced_record_id: str) -> bytes:
            return keystore_pb2.PutKeyResponse(
                record_id=row.record_id,
                kek_a_version=row.kek_a_version,
                kek_b_version=row.kek_b_version,
                replaced_record_id=replaced_record_id,
            ).SerializeToString()

        digest = self._macs.request_digest(request.SerializeToString(deterministic=True))
        response = self._store.put_record(
            row, request_id=request.request_id, actor=identity.uri, digest=digest, sign=self._macs.sign, respond=respond
        )
        reply = keystore_pb2.PutKeyResponse.FromString(response)
        _logger.info(
            "stored record %s for workspace %s provider %s by %s (request %s)",
            reply.record_id, key_context.workspace, key_context.provider, identity.uri, request.request_id,
        )
        return reply

    def FetchKey(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        workspace = validate.workspace(request.workspace)
        provider = validate.model(request.model)
        reply_key = validate.reply_key(request.reply_key)
        row = self._store.active_record(workspace, provider)
        if row is None:
            raise NotFoundError(
                f"workspace '{workspace}' has no active {provider} key; add one with 'splitkey keys add'"
            )
        if not self._macs.verify(row):
            _logger.error("row MAC check failed for record %s (workspace %s)", row.record_id, workspace)
            raise IntegrityError()
        key_context = row.context(self._deployment)
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
        )
        _logger.info(
            "released record %s (workspace %s provider %s) to %s, request %s",
            row.record_id, workspace, provider, identity.uri, request.request_id,
        )
        return keystore_pb2.FetchKeyResponse(
            context=key_context.to_proto(),
            ciphertext=row.ciphertext,
            wrap_b=row.wrap_b,
            sealed_share_a=sealed_share_a,
            grant=grant,
        )

    def ListKeys(self, request, context):
        workspace = validate.workspace(request.workspace)
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
                )
                for row in rows
            ]
        )
