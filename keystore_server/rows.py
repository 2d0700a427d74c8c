"""Stored key records and the MAC that makes any edit of a row detectable.

The keystore cannot authenticate the ciphertext or wrap_b itself (it holds
neither the DEK nor KEK-B), so every row carries an HMAC-SHA256 over all its
fields under a key derived from KEK-A. A flipped byte anywhere in a row, or a
blob copied from another row, fails this check before any share leaves.
"""

from __future__ import annotations

import hmac
import hashlib
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitkey.context import Context, encode_fields
from splitkey.secret import constant_time_equal

ACTIVE = "active"
REPLACED = "replaced"
REMOVED = "removed"


@dataclass(frozen=True)
class RecordRow:
    record_id: str
    workspace: str
    provider: str
    status: str
    ciphertext: bytes
    wrap_a: bytes
    wrap_b: bytes
    kek_a_version: int
    kek_b_version: int
    key_hint: str
    created_at_ms: int
    row_version: int = 1
    mac: bytes = b""

    def context(self, deployment: str) -> Context:
        return Context(deployment=deployment, workspace=self.workspace, provider=self.provider, record_id=self.record_id)

    def with_changes(self, **changes) -> "RecordRow":
        return replace(self, **changes)

    def mac_input(self, deployment: str) -> bytes:
        return encode_fields(
            (
                b"splitkey-row-v1",
                deployment.encode(),
                self.record_id.encode(),
                self.workspace.encode(),
                self.provider.encode(),
                self.status.encode(),
                self.ciphertext,
                self.wrap_a,
                self.wrap_b,
                str(self.kek_a_version).encode(),
                str(self.kek_b_version).encode(),
                self.key_hint.encode("utf-8"),
                str(self.created_at_ms).encode(),
                str(self.row_version).encode(),
            )
        )


class RowMac:
    """HMAC keys derived per KEK-A version; a row is MACed under its own kek_a_version."""

    def __init__(self, keyring, deployment: str):
        self._keyring = keyring
        self._deployment = deployment
        self._keys: dict[int, bytes] = {}

    def _key(self, version: int) -> bytes:
        key = self._keys.get(version)
        if key is None:
            info = encode_fields((b"splitkey", b"row-mac", self._deployment.encode(), version.to_bytes(4, "big")))
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._keyring.key(version))
            self._keys[version] = key
        return key

    def sign(self, row: RecordRow) -> RecordRow:
        mac = hmac.new(self._key(row.kek_a_version), row.mac_input(self._deployment), hashlib.sha256).digest()
        return row.with_changes(mac=mac)

    def verify(self, row: RecordRow) -> bool:
        expected = hmac.new(self._key(row.kek_a_version), row.mac_input(self._deployment), hashlib.sha256).digest()
        return constant_time_equal(expected, row.mac)

    def request_digest(self, payload: bytes) -> bytes:
        """Keyed digest of a write request, so idempotency records reveal nothing about shares."""
        return hmac.new(self._key(self._keyring.active_version), b"request|" + payload, hashlib.sha256).digest()
