"""Issue X.509 certificates for splitkey's mTLS: EC P-256 keys, ECDSA with SHA-256.

The API is small but leaves validity and names to the caller, so that tests can
mint expired, not-yet-valid, foreign-CA, chained or oddly named certificates
with the same calls the deployment tool uses.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from splitkey.pki.files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, write_atomically

# Certificates start this long before "now" so that a peer whose clock is a
# few minutes behind does not reject a certificate that was just issued.
CLOCK_SKEW = datetime.timedelta(minutes=5)

# X.509 limits a common name to 64 characters (RFC 5280, ub-common-name).
_MAX_COMMON_NAME = 64


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate, its private key, and the intermediate CAs that link it to its root.

    `chain` lists the intermediates nearest first and never includes the root,
    which peers hold as their trust anchor.
    """

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def is_self_signed(self) -> bool:
        """True for a root CA."""
        return self.certificate.issuer == self.certificate.subject

    def certificate_chain_pem(self) -> bytes:
        """Return this certificate followed by its intermediates, as PEM."""
        return b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in (self.certificate, *self.chain)
        )

    def private_key_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"<CertifiedKey {self.certificate.subject.rfc4514_string()} private key redacted>"


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """Generate an EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _validity(
    not_before: datetime.datetime | None, not_after: datetime.datetime | None, days: float
) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc)
    start = not_before if not_before is not None else now - CLOCK_SKEW
    end = not_after if not_after is not None else now + datetime.timedelta(days=days)
    if end <= start:
        raise ValueError(f"not_after ({end.isoformat()}) must be later than not_before ({start.isoformat()})")
    return start, end


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_MAX_COMMON_NAME])])


def _parent_chain(issuer: CertifiedKey) -> tuple[x509.Certificate, ...]:
    """Return the intermediates between a certificate issued by `issuer` and the root."""
    if issuer.is_self_signed:
        return ()
    return (issuer.certificate, *issuer.chain)


def _ca_builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
    validity: tuple[datetime.datetime, datetime.datetime],
    path_length: int | None,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def new_ca(
    common_name: str,
    days: float = 3650,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    path_length: int | None = 1,
) -> CertifiedKey:
    """Create a self-signed root CA.

    `path_length` is the number of intermediate CAs allowed below it (None for no limit).
    """
    key = new_private_key()
    subject = _name(common_name)
    builder = _ca_builder(
        subject, subject, key.public_key(), key.public_key(), _validity(not_before, not_after, days), path_length
    )
    return CertifiedKey(certificate=builder.sign(key, hashes.SHA256()), private_key=key)


def new_intermediate(
    issuer: CertifiedKey,
    common_name: str,
    days: float = 1825,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    path_length: int | None = 0,
) -> CertifiedKey:
    """Create an intermediate CA signed by `issuer` (a root or another intermediate)."""
    key = new_private_key()
    builder = _ca_builder(
        _name(common_name),
        issuer.certificate.subject,
        key.public_key(),
        issuer.private_key.public_key(),
        _validity(not_before, not_after, days),
        path_length,
    )
    certificate = builder.sign(issuer.private_key, hashes.SHA256())
    return CertifiedKey(certificate=certificate, private_key=key, chain=_parent_chain(issuer))


def _general_names(uris: Iterable[str], dns: Iterable[str], ips: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ips]
    return names


def issue_leaf(
    issuer: CertifiedKey,
    *,
    uris: Iterable[str] = (),
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
    common_name: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    days: float = 30,
    server_auth: bool | None = None,
    client_auth: bool | None = None,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> CertifiedKey:
    """Issue an end-entity certificate signed by `issuer`.

    The SAN extension carries exactly the given URIs, DNS names and IP
    addresses, in that order. By default a certificate with DNS names or IPs
    gets the serverAuth EKU and one with URIs gets clientAuth. Pass
    `server_auth` or `client_auth` to override, for example to mint a client
    certificate without any SAN URI. Validity defaults to
    [now - 5 minutes, now + `days`]. Raises ValueError when no EKU results or
    the validity window is empty.
    """
    uris, dns, ips = tuple(uris), tuple(dns), tuple(ips)
    if server_auth is None:
        server_auth = bool(dns or ips)
    if client_auth is None:
        client_auth = bool(uris)
    if not (server_auth or client_auth):
        raise ValueError("the certificate has no use: pass server_auth=True or client_auth=True, or give SANs")

    usages = []
    if server_auth:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)

    names = _general_names(uris, dns, ips)
    if common_name is None:
        common_name = (uris or dns or ips or ("splitkey leaf",))[0]
    key = private_key if private_key is not None else new_private_key()
    start, end = _validity(not_before, not_after, days)

    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(issuer.private_key, hashes.SHA256())
    return CertifiedKey(certificate=certificate, private_key=key, chain=_parent_chain(issuer))


def write_certificate(path: str | os.PathLike, certified: CertifiedKey, *, include_chain: bool = True) -> None:
    """Write the certificate (followed by its intermediates unless `include_chain` is False) as PEM, mode 0644."""
    if include_chain:
        data = certified.certificate_chain_pem()
    else:
        data = certified.certificate.public_bytes(serialization.Encoding.PEM)
    write_atomically(path, data, PUBLIC_FILE_MODE)


def write_private_key(path: str | os.PathLike, certified: CertifiedKey) -> None:
    """Write the private key as unencrypted PKCS#8 PEM, mode 0600."""
    write_atomically(path, certified.private_key_pem(), PRIVATE_FILE_MODE)


def write_certified_key(cert_path: str | os.PathLike, key_path: str | os.PathLike, certified: CertifiedKey) -> None:
    """Write the certificate chain and the private key of `certified` to two files."""
    write_certificate(cert_path, certified)
    write_private_key(key_path, certified)


def load_certified_key(cert_path: str | os.PathLike, key_path: str | os.PathLike) -> CertifiedKey:
    """Read a PEM certificate chain and its PEM private key, for example a deployment's CA.

    The first certificate in the file is the certificate itself, and any that
    follow are taken as its intermediates. Raises ValueError when the key does
    not match the certificate or is not an EC key.
    """
    certificates = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} does not contain an EC private key")
    if key.public_key() != certificates[0].public_key():
        raise ValueError(f"{key_path} does not match the certificate in {cert_path}")
    return CertifiedKey(certificate=certificates[0], private_key=key, chain=tuple(certificates[1:]))
