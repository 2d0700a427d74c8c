"""Checks of incoming requests shared by both servers; each error names the field and the fix."""

from __future__ import annotations

import os
import re

import nacl.bindings
import nacl.exceptions

from splitkey import record
from splitkey.context import PLATFORM_WORKSPACE, Context, validate_provider, validate_workspace
from splitkey.errors import InvalidInputError, PermissionDeniedError
from splitkey.identity import Identity

_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
REPLY_KEY_BYTES = 32
# Any scalar works for the low-order test; a random one per process avoids a constant.
_PROBE_SCALAR = os.urandom(32)
MAX_HINT_CHARS = 16


def request_id(value: str) -> str:
    if not _REQUEST_ID.fullmatch(value):
        raise InvalidInputError("request_id must be 8 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (a UUID works)")
    return value


def reply_key(value: bytes) -> bytes:
    """Reject a reply key that is the wrong size or a low-order X25519 point.

    A sealed box to a low-order point has an all-zero shared secret, which
    libsodium refuses, so such a key would fail only after a share was unwrapped.
    """
    if len(value) != REPLY_KEY_BYTES:
        raise InvalidInputError(f"reply_key must be a {REPLY_KEY_BYTES}-byte X25519 public key, got {len(value)} bytes")
    try:
        nacl.bindings.crypto_scalarmult(_PROBE_SCALAR, value)
    except (RuntimeError, nacl.exceptions.CryptoError):
        raise InvalidInputError(
            "reply_key is a low-order X25519 point; generate a fresh key pair for each request"
        ) from None
    return value


def wrap_b(value: bytes) -> int:
    """Check the size of a wrapped share_b and return the KEK-B version in its header."""
    if len(value) != record.WRAP_BYTES:
        raise InvalidInputError(
            f"wrap_b must be exactly {record.WRAP_BYTES} bytes (version, nonce, wrapped share, tag), "
            f"got {len(value)}; pass wrap_b unchanged from SecretServer.WrapShare or Keystore.FetchKey"
        )
    return record.wrap_version(value)


def context_of(message, deployment: str) -> Context:
    if not message.HasField("context"):
        raise InvalidInputError("context is missing; send the KeyContext of the record")
    context = Context.from_proto(message.context)
    if context.deployment != deployment:
        raise InvalidInputError(f"context.deployment must be this deployment's trust domain '{deployment}'")
    return context


def may_write_workspace(identity: Identity, workspace: str) -> None:
    """Only the security role writes the platform's own keys; app writes customer workspaces."""
    if workspace == PLATFORM_WORKSPACE and identity.role != "security":
        raise PermissionDeniedError(
            f"only the security role may write keys of the '{PLATFORM_WORKSPACE}' workspace; "
            "use the security client configuration"
        )
    if workspace != PLATFORM_WORKSPACE and identity.role == "security":
        raise PermissionDeniedError("the security role writes only the platform workspace; use the app role")


def put_key(message, deployment: str) -> Context:
    request_id(message.request_id)
    context = context_of(message, deployment)
    if len(message.ciphertext) != record.CIPHERTEXT_BYTES:
        raise InvalidInputError(
            f"ciphertext must be exactly {record.CIPHERTEXT_BYTES} bytes (nonce, padded key, tag), "
            f"got {len(message.ciphertext)}"
        )
    if len(message.share_a) != record.SHARE_BYTES:
        raise InvalidInputError(f"share_a must be exactly {record.SHARE_BYTES} bytes, got {len(message.share_a)}")
    wrap_b(message.wrap_b)
    if len(message.key_hint) > MAX_HINT_CHARS:
        raise InvalidInputError(f"key_hint must be at most {MAX_HINT_CHARS} characters (first and last four of the key)")
    return context


def model(value: str) -> str:
    """Return the provider part of "provider" or "provider/model"."""
    provider = value.split("/", 1)[0]
    validate_provider(provider, "model (provider part)")
    return provider


def workspace(value: str) -> str:
    return validate_workspace(value)
