"""mTLS credentials for servers and clients, checked at construction.

grpcio accepts an empty or garbage client-CA bundle and defaults to not
requiring client certificates; both silently turn mTLS into one-way TLS.
Everything here fails at start-up instead, with the file and the fix named.
Servers re-read their files when they change on disk, so replacing a
certificate takes effect for new connections without a restart.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from splitkey.config import TlsFiles
from splitkey.errors import ConfigError

_logger = logging.getLogger(__name__)


def _read(path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    if not data.strip():
        raise ConfigError(f"{what} {path} is empty; it must hold PEM data")
    return data


def load_certificates(path, what: str) -> list[x509.Certificate]:
    """Load every PEM certificate in a file, failing on an empty or unparsable file."""
    data = _read(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{what} {path} contains no valid PEM certificate") from None
    return certificates


def _load_private_key(path):
    data = _read(path, "private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The parser's message could quote the file; the file is a secret.
        raise ConfigError(f"private key {path} is not an unencrypted PEM private key") from None


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_pair(tls: TlsFiles) -> tuple[list[x509.Certificate], bytes, bytes]:
    chain = load_certificates(tls.cert, "certificate file")
    key = _load_private_key(tls.key)
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise ConfigError(
            f"{tls.cert}: the first certificate does not match the private key in {tls.key}; "
            "put the leaf certificate first, followed by its intermediates"
        )
    return chain, tls.cert.read_bytes(), tls.key.read_bytes()


def _check_validity(cert: x509.Certificate, path, now: datetime.datetime) -> None:
    if cert.not_valid_before_utc > now:
        raise ConfigError(
            f"certificate {path} is not valid before {cert.not_valid_before_utc.isoformat()} "
            f"(now {now.isoformat(timespec='seconds')}); check this host's clock or reissue it"
        )
    if cert.not_valid_after_utc <= now:
        raise ConfigError(
            f"certificate {path} expired at {cert.not_valid_after_utc.isoformat()} "
            f"(now {now.isoformat(timespec='seconds')}); issue a new one"
        )


def _mtimes(tls: TlsFiles) -> tuple:
    return tuple(os.stat(path).st_mtime_ns for path in (tls.cert, tls.key, tls.ca))


def _server_config(tls: TlsFiles):
    chain, cert_pem, key_pem = _check_pair(tls)
    _check_validity(chain[0], tls.cert, datetime.datetime.now(datetime.timezone.utc))
    load_certificates(tls.ca, "client CA file")
    return grpc.ssl_server_certificate_configuration([(key_pem, cert_pem)], root_certificates=tls.ca.read_bytes())


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Credentials that require a client certificate and reload changed files per handshake."""
    initial = _server_config(tls)
    state = {"mtimes": _mtimes(tls)}

    def fetch_new_config():
        # grpc calls this before each TLS handshake; returning None keeps the current files.
        try:
            mtimes = _mtimes(tls)
            if mtimes == state["mtimes"]:
                return None
            config = _server_config(tls)
        except (OSError, ConfigError) as error:
            _logger.error("TLS files changed but cannot be used, keeping the previous ones: %s", error)
            return None
        state["mtimes"] = mtimes
        _logger.info("reloaded TLS certificate %s and client CA %s", tls.cert, tls.ca)
        return config

    return grpc.dynamic_ssl_server_credentials(initial, fetch_new_config, require_client_authentication=True)


@dataclass(frozen=True)
class ClientCertificateInfo:
    not_after: datetime.datetime
    identity_uris: tuple[str, ...]


def client_credentials(tls: TlsFiles, *, expiry_warning_days: float = 7.0) -> tuple[grpc.ChannelCredentials, ClientCertificateInfo]:
    """Check a client's certificate files and build channel credentials from them.

    The chain must verify against the CA file of the same endpoint, because each
    splitkey server's CA issues both its server certificate and the client
    certificates it accepts. A chain that cannot reach that CA would fail every
    handshake, so it fails here once instead.
    """
    chain, cert_pem, key_pem = _check_pair(tls)
    ca_certificates = load_certificates(tls.ca, "CA file")
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = chain[0]
    _check_validity(leaf, tls.cert, now)
    try:
        verifier = verification.PolicyBuilder().store(verification.Store(ca_certificates)).time(now).build_client_verifier()
        verifier.verify(leaf, chain[1:])
    except verification.VerificationError as error:
        raise ConfigError(
            f"client certificate chain in {tls.cert} does not lead to the CA in {tls.ca} ({error}); "
            "reissue the certificate from that CA or add the missing intermediate after the leaf"
        ) from None
    remaining = leaf.not_valid_after_utc - now
    if remaining < datetime.timedelta(days=expiry_warning_days):
        _logger.warning(
            "client certificate %s expires at %s, in %.1f days; issue a new one",
            tls.cert,
            leaf.not_valid_after_utc.isoformat(),
            remaining.total_seconds() / 86400,
        )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(), private_key=key_pem, certificate_chain=cert_pem
    )
    return credentials, ClientCertificateInfo(not_after=leaf.not_valid_after_utc, identity_uris=uris)


def file_mtimes(tls: TlsFiles) -> tuple:
    """Modification times of an endpoint's TLS files; a change means credentials must be rebuilt."""
    return _mtimes(tls)
