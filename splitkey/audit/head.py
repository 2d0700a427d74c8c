"""Signed heads: a server's Ed25519 signature over the newest entry of its log.

The signature covers the canonical bytes of (server_id, seq, entry_hash,
time_ms) under a domain tag of its own, so a head signature can never be
mistaken for a use-grant signature made with another key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import nacl.exceptions
import nacl.signing

from splitkey.audit.entry import encode_fields
from splitkey.errors import IntegrityError, InvalidInputError

HEAD_DOMAIN = b"splitkey-audit-head-v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint: the hash of entry `seq` of `server_id`'s log, signed at `time_ms`."""

    server_id: str
    seq: int
    entry_hash: str
    time_ms: int
    signature: str

    def signed_bytes(self) -> bytes:
        """Return the canonical bytes that `signature` covers."""
        return head_bytes(self.server_id, self.seq, self.entry_hash, self.time_ms)

    def verify(self, public_key_hex: str) -> None:
        """Raise IntegrityError unless `signature` is valid under the Ed25519 key given in hex."""
        try:
            verify_key = nacl.signing.VerifyKey(bytes.fromhex(public_key_hex))
            verify_key.verify(self.signed_bytes(), bytes.fromhex(self.signature))
        except (ValueError, TypeError, nacl.exceptions.CryptoError):
            raise IntegrityError() from None

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SignedHead:
        """Build a head from `to_dict` output, checking types and hex formats."""
        try:
            server_id = data["server_id"]
            seq = data["seq"]
            entry_hash = data["entry_hash"]
            time_ms = data["time_ms"]
            signature = data["signature"]
        except KeyError as missing:
            raise InvalidInputError(f"signed head is missing field {missing}") from None
        if not isinstance(server_id, str) or not server_id:
            raise InvalidInputError("signed head field server_id must be a non-empty str")
        for name, value in (("seq", seq), ("time_ms", time_ms)):
            if type(value) is not int or value < 0:
                raise InvalidInputError(f"signed head field {name} must be a non-negative int")
        if not isinstance(entry_hash, str) or not _HEX64.fullmatch(entry_hash):
            raise InvalidInputError("signed head field entry_hash must be 64 lower-case hex digits")
        if not isinstance(signature, str) or not _HEX128.fullmatch(signature):
            raise InvalidInputError("signed head field signature must be 128 lower-case hex digits")
        return cls(server_id, seq, entry_hash, time_ms, signature)


def head_bytes(server_id: str, seq: int, entry_hash: str, time_ms: int) -> bytes:
    """Return the canonical bytes of a head, as signed and verified."""
    return encode_fields(HEAD_DOMAIN, [server_id, seq, entry_hash, time_ms])


def sign_head(
    signing_key: nacl.signing.SigningKey, server_id: str, seq: int, entry_hash: str, time_ms: int
) -> SignedHead:
    """Sign the head at entry `seq` with the log's Ed25519 key."""
    signature = signing_key.sign(head_bytes(server_id, seq, entry_hash, time_ms)).signature
    return SignedHead(server_id, seq, entry_hash, time_ms, signature.hex())


def public_key_hex(signing_key: nacl.signing.SigningKey) -> str:
    """Return the hex form of the Ed25519 public key that verifies `signing_key`'s heads."""
    return bytes(signing_key.verify_key).hex()
