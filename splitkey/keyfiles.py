"""Ed25519 grant and audit keys on disk: hex text of the 32-byte seed (private, 0600) or public key."""

from __future__ import annotations

import binascii
from pathlib import Path

import nacl.signing

from splitkey.errors import ConfigError


def _hex_file(path: Path, what: str) -> bytes:
    try:
        text = Path(path).read_text().strip()
        value = binascii.unhexlify(text)
    except (OSError, binascii.Error, ValueError):
        raise ConfigError(f"{what} {path} must hold 64 hex digits") from None
    if len(value) != 32:
        raise ConfigError(f"{what} {path} must hold 64 hex digits (32 bytes)")
    return value


def load_signing_key(path: Path) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_hex_file(path, "grant signing key"))


def load_verify_key(path: Path) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(_hex_file(path, "grant verify key"))


def load_audit_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Load the Ed25519 seed that signs a server's audit log heads."""
    return nacl.signing.SigningKey(_hex_file(path, "audit signing key"))
