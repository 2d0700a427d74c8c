"""The fields a caller may put into an audit entry, and their checks.

`AuditRecord` is the only input `AuditLog.append` takes. It has no bytes field
and every string has a length cap, so a key, share, DEK or ciphertext cannot be
logged by passing the wrong object. Free-text fields are also checked for the
shapes of provider API keys, as a second line of defence against a key pasted
into a reason string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from splitkey.errors import InvalidInputError

OUTCOMES = ("allowed", "denied", "error")

# Maximum lengths in characters. A SPIFFE ID may be up to 2048 bytes, but
# splitkey's `spiffe://<trust-domain>/<role>/<name>` identities are far shorter.
MAX_LENGTHS = {
    "actor": 512,
    "cert_fingerprint": 64,
    "action": 64,
    "workspace": 128,
    "provider": 64,
    "record_id": 64,
    "key_versions": 128,
    "request_id": 128,
    "context_hash": 64,
    "job_id": 128,
    "outcome": 16,
    "reason": 512,
}
MAX_COUNT = 2**31 - 1

_HEX_FIELDS = ("cert_fingerprint", "context_hash")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Prefixes of OpenAI, Anthropic, OpenRouter (`sk-`) and Google (`AIza`) keys
# followed by enough key characters that an identifier will not match by chance.
_API_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}")


@dataclass(frozen=True)
class AuditRecord:
    """One request as a server reports it to the audit log.

    Every field is a short string of identifiers, hashes or versions; the log
    adds the sequence number, time and server id. `count` is above 1 only for
    folded denials.
    """

    actor: str
    action: str
    outcome: str
    cert_fingerprint: str = ""
    workspace: str = ""
    provider: str = ""
    record_id: str = ""
    key_versions: str = ""
    request_id: str = ""
    context_hash: str = ""
    job_id: str = ""
    reason: str = ""
    count: int = 1

    def __post_init__(self) -> None:
        validate_record(self)


def validate_record(record: AuditRecord) -> None:
    """Raise InvalidInputError naming the first field that breaks the schema.

    Strings must be `str` within their caps and without control characters.
    Fingerprints and context hashes are 64 lower-case hex digits or empty.
    `outcome` is one of OUTCOMES, and `count` is between 1 and MAX_COUNT.
    """
    for item in fields(record):
        name = item.name
        value = getattr(record, name)
        if name == "count":
            _check_count(value)
            continue
        if not isinstance(value, str):
            raise InvalidInputError(
                f"audit field {name} must be a str, not {type(value).__name__}; "
                "log identifiers and hashes, never key material"
            )
        _check_text(name, value)

    if not record.actor:
        raise InvalidInputError("audit field actor is empty; pass the caller's SPIFFE ID")
    if not _ACTION.fullmatch(record.action):
        raise InvalidInputError(
            f"audit field action {record.action!r} is invalid; use a name such as FetchKey"
        )
    if record.outcome not in OUTCOMES:
        raise InvalidInputError(
            f"audit field outcome {record.outcome!r} is invalid; use one of {', '.join(OUTCOMES)}"
        )
    for name in _HEX_FIELDS:
        value = getattr(record, name)
        if value and not _HEX64.fullmatch(value):
            raise InvalidInputError(
                f"audit field {name} must be 64 lower-case hex digits (a SHA-256) or empty"
            )


def _check_count(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"audit field count must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_COUNT:
        raise InvalidInputError(f"audit field count {value} is out of range 1..{MAX_COUNT}")


def _check_text(name: str, value: str) -> None:
    limit = MAX_LENGTHS[name]
    if len(value) > limit:
        raise InvalidInputError(
            f"audit field {name} has {len(value)} characters, more than the maximum {limit}"
        )
    if _CONTROL.search(value):
        raise InvalidInputError(f"audit field {name} contains a control character")
    # The message does not echo the value: it may be the key itself.
    if _API_KEY_SHAPE.search(value):
        raise InvalidInputError(
            f"audit field {name} looks like it contains an API key; log its record id instead"
        )
