"""Caller identities taken from mTLS client certificates.

A certificate names its holder with exactly one SAN URI of the form
spiffe://<trust-domain>/<role>/<name>. Identity comes from the TLS peer only,
never from request metadata.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

ROLES = ("app", "worker", "security", "auditor", "keystore")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class IdentityError(Exception):
    """The peer certificate does not carry one valid splitkey identity."""


@dataclass(frozen=True)
class Identity:
    uri: str
    role: str
    name: str
    # SHA-256 of the DER certificate, lower-case hex.
    fingerprint: str


def identity_from_certificate(cert: x509.Certificate, trust_domain: str) -> Identity:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise IdentityError("certificate has no subjectAltName URI") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise IdentityError(f"certificate must carry exactly one SAN URI, found {len(uris)}")
    uri = uris[0]
    prefix = f"spiffe://{trust_domain}/"
    if not uri.startswith(prefix):
        raise IdentityError(f"certificate identity is not in trust domain {trust_domain}")
    parts = uri[len(prefix):].split("/")
    if len(parts) != 2 or parts[0] not in ROLES or not _NAME.fullmatch(parts[1]):
        raise IdentityError("certificate identity must be spiffe://<trust-domain>/<role>/<name> with a known role")
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    return Identity(uri=uri, role=parts[0], name=parts[1], fingerprint=fingerprint)


def identity_from_grpc_context(context, trust_domain: str) -> Identity:
    """Read the verified peer certificate of a gRPC call and return its identity."""
    auth = context.auth_context()
    pem = auth.get("x509_pem_cert")
    if not pem:
        raise IdentityError("no client certificate on this connection")
    return _identity_from_pem(pem[0], trust_domain)


@functools.lru_cache(maxsize=1024)
def _identity_from_pem(pem: bytes, trust_domain: str) -> Identity:
    # Cached by the exact certificate bytes, which TLS already verified, so a
    # renewed certificate is parsed afresh. Errors are not cached.
    return identity_from_certificate(x509.load_pem_x509_certificate(pem), trust_domain)
