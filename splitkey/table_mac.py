"""HMAC tags for rows that a server stores in SQLite, under a key derived from the server's KEK.

A server that keeps security state in its database (rules, retirement
approvals, tombstones) tags it with a key that only the KEK holder can
derive. A row written or edited by someone who can write the database file
but has no KEK then fails the check. Tags are truncated to 128 bits and
stored as hex text, so the secret server's database holds no BLOB and no
32-byte value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitkey.context import encode_fields

TAG_BYTES = 16


def derive_key(keyring, version: int, *, purpose: str, label: str, deployment: str) -> bytes:
    """Derive the MAC key of `purpose` from KEK `version` of `keyring`.

    `label` names the server ("keystore" or "secret"), so the two servers'
    keys differ even for the same purpose. Raises KeyVersionError when the
    keyring does not hold `version` or has retired it.
    """
    info = encode_fields(
        (b"splitkey", purpose.encode(), label.encode(), deployment.encode(), version.to_bytes(4, "big"))
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(keyring.key(version))


def tag_hex(key: bytes, fields: Iterable[bytes]) -> str:
    """Return the hex of the first 16 bytes of HMAC-SHA256 over the length-prefixed `fields`.

    The input is the same as `encode_fields(fields)`, fed field by field so a
    long table is never copied into one buffer.
    """
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for field in fields:
        mac.update(encode_fields((field,)))
    return mac.digest()[:TAG_BYTES].hex()
