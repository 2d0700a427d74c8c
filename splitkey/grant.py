"""Use grants: the keystore's signed, short-lived permission for one unwrap.

The keystore signs, with Ed25519, the canonical encoding of the worker's
identity, the request id, the context hash, the SHA-256 of the wrap_b it
released and the worker's reply key, with an expiry at most
MAX_GRANT_LIFETIME_MS away. The secret server unwraps a share_b only for the
worker named in a valid grant, so every unwrap is tied to a live, logged
keystore call.
"""

from __future__ import annotations

import hashlib
import time

import nacl.exceptions
import nacl.signing

from splitkey.context import encode_fields
from splitkey.errors import PermissionDeniedError
from splitkey.secret import constant_time_equal
from splitkey.v1 import common_pb2

MAX_GRANT_LIFETIME_MS = 60_000
# Tolerated clock difference between the keystore and the secret server.
CLOCK_SKEW_MS = 5_000
_DOMAIN = b"splitkey-use-grant-v2"


def _signed_bytes(grant: common_pb2.UseGrant) -> bytes:
    return encode_fields(
        (
            _DOMAIN,
            grant.worker_identity.encode("utf-8"),
            grant.request_id.encode("utf-8"),
            grant.context_hash,
            grant.wrap_b_hash,
            grant.reply_key,
            grant.expires_at_ms.to_bytes(8, "big", signed=True),
            grant.requested_workspace.encode("utf-8"),
        )
    )


def issue_grant(
    signing_key: nacl.signing.SigningKey,
    *,
    worker_identity: str,
    request_id: str,
    context_hash: bytes,
    wrap_b: bytes,
    reply_key: bytes,
    requested_workspace: str = "",
    lifetime_ms: int = MAX_GRANT_LIFETIME_MS,
    now_ms: int | None = None,
) -> common_pb2.UseGrant:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    grant = common_pb2.UseGrant(
        requested_workspace=requested_workspace,
        worker_identity=worker_identity,
        request_id=request_id,
        context_hash=context_hash,
        wrap_b_hash=hashlib.sha256(wrap_b).digest(),
        reply_key=reply_key,
        expires_at_ms=now_ms + min(lifetime_ms, MAX_GRANT_LIFETIME_MS),
    )
    grant.signature = signing_key.sign(_signed_bytes(grant)).signature
    return grant


def check_grant(
    verify_key: nacl.signing.VerifyKey,
    grant: common_pb2.UseGrant,
    *,
    caller_identity: str,
    request_id: str,
    context_hash: bytes,
    wrap_b: bytes,
    reply_key: bytes,
    now_ms: int | None = None,
) -> None:
    """Raise PermissionDeniedError unless the grant allows this caller this unwrap now."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not grant.signature:
        raise PermissionDeniedError("grant is missing; call Keystore.FetchKey first and pass its grant")
    try:
        verify_key.verify(_signed_bytes(grant), grant.signature)
    except nacl.exceptions.BadSignatureError:
        raise PermissionDeniedError("grant signature is invalid") from None
    if grant.worker_identity != caller_identity:
        raise PermissionDeniedError("grant was issued to another identity")
    if not constant_time_equal(grant.request_id, request_id):
        raise PermissionDeniedError("grant was issued for another request_id")
    if not constant_time_equal(grant.context_hash, context_hash):
        raise PermissionDeniedError("grant was issued for another record")
    if not constant_time_equal(grant.wrap_b_hash, hashlib.sha256(wrap_b).digest()):
        raise PermissionDeniedError("grant was issued for another wrap_b")
    if not constant_time_equal(grant.reply_key, reply_key):
        raise PermissionDeniedError("grant was issued for another reply_key")
    if grant.expires_at_ms <= now_ms - CLOCK_SKEW_MS:
        raise PermissionDeniedError("grant has expired; fetch the key again")
    if grant.expires_at_ms > now_ms + MAX_GRANT_LIFETIME_MS + CLOCK_SKEW_MS:
        raise PermissionDeniedError("grant lifetime exceeds 60 s")
