"""The auditor's pin file: per log, the public key and the last signed head verified.

    {"format": "splitkey-audit-pins-v1",
     "logs": {"<server_id>": {"public_key": "<hex>", "head": {<SignedHead>}}}}

A later verify checks that the log still contains the pinned head (else it was
truncated or forked) and that its heads verify under the pinned key (else the
log was regenerated under another key). The file holds no secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from splitkey.audit.head import SignedHead
from splitkey.errors import ConfigError, InvalidInputError
from splitkey.pki.files import PUBLIC_FILE_MODE, write_atomically

PINS_FORMAT = "splitkey-audit-pins-v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """The verified state of one log: its public key, and its newest signed head at that time."""

    public_key: str
    head: SignedHead


def load_pins(path: Path) -> dict[str, Pin]:
    """Read a pin file; a missing file means nothing is pinned yet. Raise ConfigError when it is malformed."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ConfigError(f"pin file {path} cannot be read: {error}") from None
    if not isinstance(document, dict) or document.get("format") != PINS_FORMAT or not isinstance(document.get("logs"), dict):
        raise ConfigError(f"pin file {path} is not a {PINS_FORMAT} file")
    pins = {}
    for server_id, item in document["logs"].items():
        try:
            public_key = item["public_key"]
            if not isinstance(public_key, str) or not _HEX64.fullmatch(public_key):
                raise InvalidInputError("public_key must be 64 lower-case hex digits")
            head = SignedHead.from_dict(item["head"])
        except (KeyError, TypeError, InvalidInputError) as error:
            raise ConfigError(f"pin file {path}: the entry for {server_id!r} is malformed: {error}") from None
        if head.server_id != server_id:
            raise ConfigError(f"pin file {path}: the head pinned for {server_id!r} names {head.server_id!r}")
        pins[server_id] = Pin(public_key, head)
    return pins


def save_pins(path: Path, pins: dict[str, Pin]) -> None:
    """Write the pin file atomically."""
    document = {
        "format": PINS_FORMAT,
        "logs": {
            server_id: {"public_key": pin.public_key, "head": pin.head.to_dict()}
            for server_id, pin in sorted(pins.items())
        },
    }
    write_atomically(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode(), PUBLIC_FILE_MODE)
