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
    fingerprint: str = ""

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
                self.fingerprint.encode(),
            )
        )


class RowMac:
    """HMAC keys derived per KEK-A version and purpose; a row is MACed under its own kek_a_version.

    Purposes: "row-mac" for key records, "access-mac" for state that decides
    access (workspace modes, revocations), "fingerprint" for key fingerprints.
    """

    def __init__(self, keyring, deployment: str):
        self._keyring = keyring
        self._deployment = deployment
        self._keys: dict[tuple[int, str], bytes] = {}

    def derive(self, version: int, purpose: str) -> bytes:
        key = self._keys.get((version, purpose))
        if key is None:
            info = encode_fields(
                (b"splitkey", purpose.encode(), self._deployment.encode(), version.to_bytes(4, "big"))
            )
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._keyring.key(version))
            self._keys[(version, purpose)] = key
        return key

    def _key(self, version: int) -> bytes:
        return self.derive(version, "row-mac")

    def tag(self, version: int, purpose: str, fields: tuple[bytes, ...]) -> bytes:
        """HMAC-SHA256 of length-prefixed fields under the key for (version, purpose)."""
        return hmac.new(self.derive(version, purpose), encode_fields(fields), hashlib.sha256).digest()

    def fingerprint(self, key_digest: bytes) -> str:
        """Fingerprint of a key, from the client's digest, under the active KEK-A version's key.

        NOTE: a fingerprint is computed under the KEK-A version active when the
        key is added, so the same key added before and after a KEK-A rotation
        gets two different fingerprints.
        """
        version = self._keyring.active_version
        return self.tag(version, "fingerprint", (key_digest,))[:8].hex()

    def sign(self, row: RecordRow) -> RecordRow:
        mac = hmac.new(self._key(row.kek_a_version), row.mac_input(self._deployment), hashlib.sha256).digest()
        return row.with_changes(mac=mac)

    def verify(self, row: RecordRow) -> bool:
        expected = hmac.new(self._key(row.kek_a_version), row.mac_input(self._deployment), hashlib.sha256).digest()
        return constant_time_equal(expected, row.mac)
