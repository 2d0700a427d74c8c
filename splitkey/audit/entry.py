"""Stored audit entries and their hash chain.

    entry_hash = SHA-256(canonical_bytes(entry without entry_hash))

The canonical bytes are a domain tag followed by every field in the fixed
order of `ENTRY_FIELDS`: a string as a 4-byte big-endian length and its UTF-8
bytes, an integer as 8 bytes big-endian signed. `prev_hash` is one of those
fields, so each entry commits to the whole history before it. The encoding
never depends on JSON or dictionary order.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass, fields

from splitkey.errors import InvalidInputError

ENTRY_DOMAIN = b"splitkey-audit-entry-v1"
ZERO_HASH = "0" * 64

# Actions the log writes by itself, never passed in by a server.
GENESIS_ACTION = "genesis"
WITNESS_ACTION = "witness"
PRUNE_ACTION = "prune"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the chain: the caller's record plus what the log adds.

    `public_key` is set only on genesis entries; the `peer_*` fields only on
    witness entries, where they copy the peer's signed head. Unset strings are
    empty and unset integers are 0, so every entry encodes the same way.
    """

    seq: int
    time_ms: int
    server_id: str
    actor: str
    cert_fingerprint: str
    action: str
    workspace: str
    provider: str
    record_id: str
    key_versions: str
    request_id: str
    context_hash: str
    job_id: str
    outcome: str
    reason: str
    count: int
    public_key: str
    peer_server_id: str
    peer_seq: int
    peer_head_hash: str
    peer_time_ms: int
    peer_signature: str
    prev_hash: str
    entry_hash: str

    def compute_hash(self) -> str:
        """Return the hex SHA-256 of this entry's canonical bytes."""
        return hash_fields(self.to_dict())

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a plain dictionary (for export and SQL)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AuditEntry:
        """Build an entry from `to_dict` output, checking field names and types."""
        missing = [name for name in ENTRY_FIELDS + ("entry_hash",) if name not in data]
        if missing:
            raise InvalidInputError(f"audit entry is missing fields: {', '.join(missing)}")
        values = {}
        for name in ENTRY_FIELDS + ("entry_hash",):
            value = data[name]
            expected = int if name in INT_FIELDS else str
            if type(value) is not expected:
                raise InvalidInputError(
                    f"audit entry field {name} must be {expected.__name__}, not {type(value).__name__}"
                )
            values[name] = value
        return cls(**values)


ENTRY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEntry) if f.name != "entry_hash")
INT_FIELDS = frozenset({"seq", "time_ms", "count", "peer_seq", "peer_time_ms"})


def encode_fields(domain: bytes, values: list[str | int]) -> bytes:
    """Encode values as length-prefixed strings and fixed-width integers."""
    parts = [struct.pack(">I", len(domain)), domain]
    for value in values:
        if isinstance(value, bool):
            raise TypeError("booleans have no canonical encoding here; use an int")
        if isinstance(value, int):
            parts.append(struct.pack(">q", value))
        elif isinstance(value, str):
            raw = value.encode("utf-8")
            parts.append(struct.pack(">I", len(raw)))
            parts.append(raw)
        else:
            raise TypeError(f"cannot encode {type(value).__name__} canonically")
    return b"".join(parts)


def hash_fields(data: dict[str, object]) -> str:
    """Return the entry hash of a mapping that contains every name in ENTRY_FIELDS."""
    encoded = encode_fields(ENTRY_DOMAIN, [data[name] for name in ENTRY_FIELDS])  # type: ignore[misc]
    return hashlib.sha256(encoded).hexdigest()
