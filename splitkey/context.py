"""The canonical context: the byte string every AES-GCM call of a record uses as AAD.

Layout, each field as a 2-byte big-endian length followed by its ASCII bytes,
in this fixed order:

    "splitkey" | format version | deployment | purpose | workspace | provider | record id

Every field is validated before encoding and non-canonical input (upper case,
surrounding spaces, unknown purpose) is rejected rather than normalized, so
two different strings can never name the same record. A blob moved to another
workspace, record, purpose or deployment therefore fails to decrypt.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from splitkey.errors import InvalidInputError

FORMAT_VERSION = 1
PROVIDERS = ("anthropic", "google", "openai", "openrouter")
PURPOSES = ("content", "share-a", "share-b", "record", "row-mac")

# The platform's own keys live under this reserved workspace id, which only
# the security role may write.
PLATFORM_WORKSPACE = "platform"

_WORKSPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_RECORD_ID = re.compile(r"[0-9a-f]{32}")
_DEPLOYMENT = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def validate_workspace(workspace: str, field: str = "workspace") -> str:
    if not isinstance(workspace, str) or not _WORKSPACE.fullmatch(workspace):
        raise InvalidInputError(
            f"{field} must be 1 to 64 characters of lower-case a-z, 0-9, '_' or '-', starting with a letter or digit"
        )
    return workspace


def validate_provider(provider: str, field: str = "provider") -> str:
    if provider not in PROVIDERS:
        raise InvalidInputError(f"{field} must be one of {', '.join(PROVIDERS)}")
    return provider


def validate_record_id(record_id: str, field: str = "record_id") -> str:
    if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
        raise InvalidInputError(f"{field} must be 32 lower-case hex digits (a 128-bit id)")
    return record_id


def validate_deployment(deployment: str, field: str = "deployment") -> str:
    if not isinstance(deployment, str) or len(deployment) > 253 or not _DEPLOYMENT.fullmatch(deployment):
        raise InvalidInputError(f"{field} must be a lower-case DNS name such as 'splitkey.test'")
    return deployment


@dataclass(frozen=True)
class Context:
    """The identity of one stored key record; see the module docstring for its encoding."""

    deployment: str
    workspace: str
    provider: str
    record_id: str
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise InvalidInputError(f"context.format_version must be {FORMAT_VERSION}")
        validate_deployment(self.deployment, "context.deployment")
        validate_workspace(self.workspace, "context.workspace")
        validate_provider(self.provider, "context.provider")
        validate_record_id(self.record_id, "context.record_id")

    def encode(self, purpose: str) -> bytes:
        """Return the canonical AAD bytes of this context for one purpose."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown context purpose {purpose!r}")
        fields = (
            b"splitkey",
            str(self.format_version).encode("ascii"),
            self.deployment.encode("ascii"),
            purpose.encode("ascii"),
            self.workspace.encode("ascii"),
            self.provider.encode("ascii"),
            self.record_id.encode("ascii"),
        )
        return encode_fields(fields)

    def digest(self) -> bytes:
        """SHA-256 of the context with purpose "record": the id used in grants and audit logs."""
        return hashlib.sha256(self.encode("record")).digest()

    @classmethod
    def from_proto(cls, message) -> "Context":
        """Build from a `splitkey.v1.KeyContext`, raising InvalidInputError on any bad field."""
        return cls(
            deployment=message.deployment,
            workspace=message.workspace,
            provider=message.provider,
            record_id=message.record_id,
            format_version=message.format_version,
        )

    def to_proto(self):
        from splitkey.v1 import common_pb2

        return common_pb2.KeyContext(
            format_version=self.format_version,
            deployment=self.deployment,
            workspace=self.workspace,
            provider=self.provider,
            record_id=self.record_id,
        )


def encode_fields(fields: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Length-prefix each field (2-byte big-endian) and concatenate them."""
    out = bytearray()
    for item in fields:
        if len(item) > 0xFFFF:
            raise ValueError("canonical field longer than 65535 bytes")
        out += len(item).to_bytes(2, "big")
        out += item
    return bytes(out)
