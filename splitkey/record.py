"""The stored record format: padded AES-256-GCM content, a DEK split into two shares, wrapped shares.

    ciphertext = nonce(12) || AES-256-GCM(DEK, pad(key), aad=context("content"))
    share_a    = 32 random bytes;  share_b = DEK XOR share_a
    wrap       = version(4, big-endian) || nonce(12) || AES-256-GCM(K, share, aad=context(purpose))
    K          = HKDF-SHA256(KEK[version], salt=empty, info=context(purpose) || version(4))

with purpose "share-a" under KEK-A and "share-b" under KEK-B. The version in
a wrap's header only selects the KEK; a forged header derives another K and
fails authentication. Every failure to open a blob raises the same
IntegrityError, with no detail.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitkey.context import Context
from splitkey.errors import IntegrityError, InvalidInputError

DEK_BYTES = 32
SHARE_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# Every key is padded to this size so the ciphertext hides its length. One
# byte goes to the 0x80 end marker, so keys may be at most 255 bytes long.
PADDED_BYTES = 256
MAX_KEY_BYTES = PADDED_BYTES - 1
CIPHERTEXT_BYTES = NONCE_BYTES + PADDED_BYTES + TAG_BYTES
VERSION_BYTES = 4
WRAP_BYTES = VERSION_BYTES + NONCE_BYTES + SHARE_BYTES + TAG_BYTES


def pad(key: bytes) -> bytes:
    """Pad to PADDED_BYTES with one 0x80 byte and then zeros (ISO/IEC 7816-4)."""
    if not key:
        raise InvalidInputError("api_key is empty; paste the whole key")
    if len(key) > MAX_KEY_BYTES:
        raise InvalidInputError(f"api_key is {len(key)} bytes long; the maximum is {MAX_KEY_BYTES} bytes")
    return key + b"\x80" + bytes(PADDED_BYTES - len(key) - 1)


def unpad(padded: bytes) -> bytes:
    end = padded.rstrip(b"\x00")
    if len(padded) != PADDED_BYTES or not end.endswith(b"\x80") or len(end) < 2:
        raise IntegrityError()
    return end[:-1]


def seal_content(dek: bytes, key: bytes, context: Context, nonce: bytes | None = None) -> bytes:
    """Encrypt a padded API key under the DEK. `nonce` is a seam for known-answer tests only."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    return nonce + AESGCM(dek).encrypt(nonce, pad(key), context.encode("content"))


def open_content(dek: bytes, ciphertext: bytes, context: Context) -> bytes:
    if len(ciphertext) != CIPHERTEXT_BYTES:
        raise IntegrityError()
    try:
        padded = AESGCM(dek).decrypt(ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:], context.encode("content"))
    except InvalidTag:
        # No chaining: the cause says nothing useful and must not travel with key material nearby.
        raise IntegrityError() from None
    return unpad(padded)


def xor_bytes(left: bytes, right: bytes) -> bytes:
    if len(left) != len(right):
        raise ValueError("xor of byte strings of different lengths")
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def split_dek(dek: bytes, share_a: bytes | None = None) -> tuple[bytes, bytes]:
    """Split a DEK into (share_a, share_b); each alone is uniformly random."""
    if len(dek) != DEK_BYTES:
        raise ValueError("a DEK is exactly 32 bytes")
    share_a = os.urandom(SHARE_BYTES) if share_a is None else share_a
    return share_a, xor_bytes(dek, share_a)


def combine_shares(share_a: bytes, share_b: bytes) -> bytes:
    if len(share_a) != SHARE_BYTES or len(share_b) != SHARE_BYTES:
        raise IntegrityError()
    return xor_bytes(share_a, share_b)


def derive_wrapping_key(kek: bytes, version: int, context: Context, purpose: str) -> bytes:
    info = context.encode(purpose) + version.to_bytes(VERSION_BYTES, "big")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(kek)


def wrap_share(kek: bytes, version: int, share: bytes, context: Context, purpose: str, nonce: bytes | None = None) -> bytes:
    """Wrap one 32-byte share under a KEK version. `nonce` is a seam for known-answer tests only."""
    if len(share) != SHARE_BYTES:
        raise InvalidInputError(f"share must be exactly {SHARE_BYTES} bytes")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    key = derive_wrapping_key(kek, version, context, purpose)
    header = version.to_bytes(VERSION_BYTES, "big")
    return header + nonce + AESGCM(key).encrypt(nonce, share, context.encode(purpose))


def wrap_version(wrap: bytes) -> int:
    """Read the KEK version from a wrap's header, rejecting blobs of the wrong size."""
    if len(wrap) != WRAP_BYTES:
        raise InvalidInputError(f"wrapped share must be exactly {WRAP_BYTES} bytes")
    return int.from_bytes(wrap[:VERSION_BYTES], "big")


def unwrap_share(kek: bytes, wrap: bytes, context: Context, purpose: str) -> bytes:
    version = wrap_version(wrap)
    key = derive_wrapping_key(kek, version, context, purpose)
    nonce = wrap[VERSION_BYTES:VERSION_BYTES + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, wrap[VERSION_BYTES + NONCE_BYTES:], context.encode(purpose))
    except InvalidTag:
        raise IntegrityError() from None
