"""Create a complete development deployment in one folder.

`init_deployment` writes both CAs, server and client certificates, both KEK
keyrings with their passphrase files, the grant key pair and one TOML file per
server and per client role. Every path in the TOML files is relative to the
folder, so the folder can be moved as a whole.

This puts both CAs and both KEKs on one machine, which defeats the split
custody that splitkey exists for. Production creates each KEK on its own host
with `init-kek` and runs each CA under separate administrators.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

import tomli_w
from nacl.signing import SigningKey

from splitkey.config import load_keystore_config
from splitkey.context import validate_deployment
from splitkey.errors import ConfigError, InvalidInputError
from splitkey.kek import Argon2Params, create_keyring, generate_passphrase
from splitkey.pki.certs import (
    CertifiedKey,
    issue_leaf,
    load_certified_key,
    new_ca,
    write_certified_key,
)
from splitkey.pki.files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, make_private_directory, write_atomically

logger = logging.getLogger(__name__)

DEV_CLIENT_ROLES = ("app", "worker", "security", "auditor")
DEV_CLIENT_NAME = "dev"
KEYSTORE_IDENTITY_NAME = "main"

CA_DAYS = 3650
SERVER_DAYS = 365

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

# Entries of a deployment folder that `force=True` deletes before writing anew.
# Anything else in the folder is left alone.
_OWNED_ENTRIES = ("ca", "keystore", "secret", "clients", "keystore.toml", "secret.toml", "README.txt")

README = """\
splitkey DEVELOPMENT deployment
===============================

This folder was made by `splitkey pki init` for development and tests.

Both CAs (ca/keystore-ca.*, ca/secret-ca.*) and both KEKs
(keystore/kek-a.keyring.json, secret/kek-b.keyring.json) were created on one
machine, and their passphrases are stored next to them. That is convenient,
and it defeats the split: whoever reads this folder can recover every stored
API key. Do not use it for production data.

In production, create each KEK on its own host with
`splitkey keystore init-kek` and `splitkey secret init-kek`, keep each
passphrase on that host only, and run each CA under separate administrators.

Files
-----
keystore.toml, secret.toml      server configurations
client-<role>.toml              one client configuration per role
ca/                             the two CAs; each issues its server's certificate
                                and the client certificates that server accepts
keystore/to-secret.*            the keystore's client certificate for the secret
                                server (issued by the secret CA)
keystore/grant-signing.key      Ed25519 seed (hex) that signs use grants
secret/grant-verify.pub         matching Ed25519 public key (hex)
keystore/audit-signing.key,     Ed25519 seeds (hex) that sign each server's audit
secret/audit-signing.key        log heads; each server's TOML names the other's
                                public key under [audit]
clients/<role>/                 certificates of spiffe://{trust_domain}/<role>/dev,
                                one per server, valid for {client_days} days

Client certificates are short-lived. Renew one with
`splitkey pki issue-client DIR ROLE [--name NAME]`.
"""


def spiffe_id(trust_domain: str, role: str, name: str) -> str:
    """Return the SAN URI of an identity: spiffe://<trust-domain>/<role>/<name>."""
    return f"spiffe://{trust_domain}/{role}/{name}"


def split_address(address: str) -> tuple[str, int]:
    """Split "HOST:PORT" (IPv6 as "[::1]:PORT") into host and port; raise ConfigError if invalid."""
    host, separator, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"address {address!r} is invalid; write it as HOST:PORT, for example 127.0.0.1:7443")
    return host, int(port_text)


def join_address(host: str, port: int) -> str:
    """Format host and port as an address, bracketing IPv6 hosts."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _connect_host(listen_host: str) -> str:
    """Return the host a local client dials for a server listening on `listen_host`."""
    if listen_host == "0.0.0.0":
        return "127.0.0.1"
    if listen_host == "::":
        return "::1"
    return listen_host


def _resolve_ports(addresses: list[str]) -> list[str]:
    """Replace port 0 by a free port, different for every address.

    All sockets stay bound until every port has been read, so two addresses
    never get the same port. Another process may still take a port before the
    server binds it.
    """
    sockets: list[socket.socket] = []
    resolved = []
    try:
        for address in addresses:
            host, port = split_address(address)
            if port == 0:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                probe = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(probe)
                try:
                    probe.bind((host, 0))
                except OSError as error:
                    raise ConfigError(f"cannot bind {host} to pick a free port: {error.strerror}") from None
                port = probe.getsockname()[1]
            resolved.append(join_address(host, port))
    finally:
        for probe in sockets:
            probe.close()
    return resolved


def _server_names(host: str) -> tuple[list[str], list[str]]:
    """Return the DNS and IP SANs of a server certificate for a server reachable at `host`."""
    dns, ips = ["localhost"], ["127.0.0.1"]
    host = _connect_host(host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host not in dns:
            dns.append(host)
    else:
        if str(address) not in ips:
            ips.append(str(address))
    return dns, ips


def _client_folder(role: str, name: str) -> tuple[str, str]:
    """Return the client's certificate folder and TOML file name, relative to the deployment."""
    if name == DEV_CLIENT_NAME:
        return f"clients/{role}", f"client-{role}.toml"
    return f"clients/{role}-{name}", f"client-{role}-{name}.toml"


def _write_toml(path: Path, document: dict) -> None:
    write_atomically(path, tomli_w.dumps(document).encode(), PRIVATE_FILE_MODE)


def _write_client(
    root: Path,
    role: str,
    name: str,
    *,
    trust_domain: str,
    keystore_ca: CertifiedKey,
    secret_ca: CertifiedKey,
    keystore_address: str,
    secret_address: str,
    days: float,
) -> Path:
    folder, toml_name = _client_folder(role, name)
    make_private_directory(root / folder)
    uri = spiffe_id(trust_domain, role, name)
    for server, ca in (("keystore", keystore_ca), ("secret", secret_ca)):
        leaf = issue_leaf(ca, uris=[uri], days=days)
        write_certified_key(root / folder / f"{server}.pem", root / folder / f"{server}.key", leaf)
    toml_path = root / toml_name
    _write_toml(
        toml_path,
        {
            "client": {"trust_domain": trust_domain},
            "keystore": {
                "address": keystore_address,
                "cert": f"{folder}/keystore.pem",
                "key": f"{folder}/keystore.key",
                "ca": "ca/keystore-ca.pem",
            },
            "secret": {
                "address": secret_address,
                "cert": f"{folder}/secret.pem",
                "key": f"{folder}/secret.key",
                "ca": "ca/secret-ca.pem",
            },
        },
    )
    return toml_path


def _write_grant_keys(root: Path) -> None:
    signing_key = SigningKey.generate()
    # bytes(SigningKey) is the 32-byte seed, from which the key pair is derived.
    write_atomically(root / "keystore/grant-signing.key", bytes(signing_key).hex().encode(), PRIVATE_FILE_MODE)
    write_atomically(root / "secret/grant-verify.pub", signing_key.verify_key.encode().hex().encode(), PUBLIC_FILE_MODE)


def _write_kek(root: Path, server: str, purpose: str, trust_domain: str, argon2_params) -> None:
    passphrase = generate_passphrase().encode()
    write_atomically(root / f"{server}/{purpose}.passphrase", passphrase, PRIVATE_FILE_MODE)
    create_keyring(
        root / f"{server}/{purpose}.keyring.json", purpose, trust_domain, passphrase, argon2_params=argon2_params
    )


def _write_audit_keys(root: Path) -> dict[str, str]:
    """Write each server's audit signing seed and return {server: hex public key}."""
    public_keys = {}
    for server in ("keystore", "secret"):
        signing_key = SigningKey.generate()
        write_atomically(root / f"{server}/audit-signing.key", bytes(signing_key).hex().encode(), PRIVATE_FILE_MODE)
        public_keys[server] = signing_key.verify_key.encode().hex()
    return public_keys


def _audit_table(server: str, peer_public_key: str) -> dict:
    return {
        "signing_key": f"{server}/audit-signing.key",
        "peer_public_key": peer_public_key,
        "timeout_s": 2.0,
        "checkpoint_every": 1000,
        "checkpoint_interval_s": 60.0,
        "witness_interval_s": 30.0,
    }


def _write_servers(
    root: Path, trust_domain: str, keystore_ca: CertifiedKey, secret_ca: CertifiedKey, addresses: tuple[str, str]
) -> None:
    keystore_address, secret_address = addresses
    audit_keys = _write_audit_keys(root)
    for server, ca, address in (("keystore", keystore_ca, keystore_address), ("secret", secret_ca, secret_address)):
        make_private_directory(root / server / "data")
        dns, ips = _server_names(split_address(address)[0])
        leaf = issue_leaf(ca, dns=dns, ips=ips, common_name=f"splitkey {server} server", days=SERVER_DAYS)
        write_certified_key(root / server / "server.pem", root / server / "server.key", leaf)

    # The keystore is a client of the secret server, so the secret CA issues its identity.
    to_secret = issue_leaf(
        secret_ca, uris=[spiffe_id(trust_domain, "keystore", KEYSTORE_IDENTITY_NAME)], days=SERVER_DAYS
    )
    write_certified_key(root / "keystore/to-secret.pem", root / "keystore/to-secret.key", to_secret)

    _write_toml(
        root / "keystore.toml",
        {
            "server": {
                "listen": keystore_address,
                "trust_domain": trust_domain,
                "data_dir": "keystore/data",
                "log_file": "keystore/server.log",
            },
            "tls": {"cert": "keystore/server.pem", "key": "keystore/server.key", "ca": "ca/keystore-ca.pem"},
            "kek": {"keyring": "keystore/kek-a.keyring.json", "passphrase_file": "keystore/kek-a.passphrase"},
            "grant": {"signing_key": "keystore/grant-signing.key"},
            "secret_server": {
                "address": _client_address(secret_address),
                "cert": "keystore/to-secret.pem",
                "key": "keystore/to-secret.key",
                "ca": "ca/secret-ca.pem",
            },
            "audit": _audit_table("keystore", audit_keys["secret"]),
        },
    )
    _write_toml(
        root / "secret.toml",
        {
            "server": {
                "listen": secret_address,
                "trust_domain": trust_domain,
                "data_dir": "secret/data",
                "log_file": "secret/server.log",
            },
            "tls": {"cert": "secret/server.pem", "key": "secret/server.key", "ca": "ca/secret-ca.pem"},
            "kek": {"keyring": "secret/kek-b.keyring.json", "passphrase_file": "secret/kek-b.passphrase"},
            "grant": {"verify_key": "secret/grant-verify.pub"},
            "audit": _audit_table("secret", audit_keys["keystore"]),
        },
    )


def _client_address(listen: str) -> str:
    host, port = split_address(listen)
    return join_address(_connect_host(host), port)


def _validate_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{field} {value!r} is invalid; use 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")
    return value


def _check_target(directory: Path, force: bool) -> None:
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise ConfigError(f"{directory} exists and is not a folder")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise ConfigError(f"{directory} is not empty; choose an empty folder or pass --force to replace it")


def _remove_owned_entries(directory: Path) -> None:
    names = list(_OWNED_ENTRIES) + [entry.name for entry in directory.glob("client-*.toml")]
    for name in names:
        entry = directory / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


def _build(
    staging: Path,
    trust_domain: str,
    addresses: tuple[str, str],
    client_days: float,
    argon2_params: Argon2Params | Mapping[str, int] | None,
) -> None:
    for folder in ("ca", "keystore", "secret", "clients"):
        make_private_directory(staging / folder)

    keystore_ca = new_ca(f"splitkey keystore CA {trust_domain} (development)", CA_DAYS)
    secret_ca = new_ca(f"splitkey secret CA {trust_domain} (development)", CA_DAYS)
    for name, ca in (("keystore-ca", keystore_ca), ("secret-ca", secret_ca)):
        write_certified_key(staging / "ca" / f"{name}.pem", staging / "ca" / f"{name}.key", ca)

    _write_servers(staging, trust_domain, keystore_ca, secret_ca, addresses)
    _write_grant_keys(staging)
    _write_kek(staging, "keystore", "kek-a", trust_domain, argon2_params)
    _write_kek(staging, "secret", "kek-b", trust_domain, argon2_params)

    keystore_client_address = _client_address(addresses[0])
    secret_client_address = _client_address(addresses[1])
    for role in DEV_CLIENT_ROLES:
        _write_client(
            staging,
            role,
            DEV_CLIENT_NAME,
            trust_domain=trust_domain,
            keystore_ca=keystore_ca,
            secret_ca=secret_ca,
            keystore_address=keystore_client_address,
            secret_address=secret_client_address,
            days=client_days,
        )

    readme = README.format(trust_domain=trust_domain, client_days=client_days)
    write_atomically(staging / "README.txt", readme.encode(), PUBLIC_FILE_MODE)


def init_deployment(
    directory: str | os.PathLike,
    *,
    trust_domain: str = "splitkey.test",
    keystore_address: str = "127.0.0.1:0",
    secret_address: str = "127.0.0.1:0",
    client_days: float = 30,
    argon2_params: Argon2Params | Mapping[str, int] | None = None,
    force: bool = False,
) -> Path:
    """Create a development deployment in `directory` and return its absolute path.

    An address with port 0 gets a free port picked now. The files are built in
    a temporary sibling folder and moved into place only when complete, so a
    failure leaves `directory` as it was. Raises ConfigError when `directory`
    is not empty, unless `force` is True. Then the entries this function owns
    (ca/, keystore/, secret/, clients/, *.toml, README.txt) are deleted first,
    including the servers' data, and other entries are kept.
    """
    target = Path(directory).absolute()
    try:
        validate_deployment(trust_domain, "trust domain")
    except InvalidInputError as error:
        raise ConfigError(str(error)) from None
    if client_days <= 0:
        raise ConfigError(f"client_days must be positive, got {client_days}")
    _check_target(target, force)
    addresses = _resolve_ports([keystore_address, secret_address])

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.init-", dir=target.parent))
    try:
        _build(staging, trust_domain, (addresses[0], addresses[1]), client_days, argon2_params)
        if target.exists() and any(target.iterdir()):
            _remove_owned_entries(target)
            for entry in staging.iterdir():
                os.rename(entry, target / entry.name)
            staging.rmdir()
        else:
            # rename() replaces an empty folder atomically.
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(target, 0o700)
    logger.info("created development deployment in %s (trust domain %s)", target, trust_domain)
    return target


def issue_client(directory: str | os.PathLike, role: str, name: str = DEV_CLIENT_NAME, *, days: float = 30) -> Path:
    """Issue (or renew) the certificates and TOML file of one client identity in a deployment.

    Reads the CAs, trust domain and addresses from the deployment, writes
    clients/<role>[-<name>]/ and client-<role>[-<name>].toml, and returns the
    TOML path. Use it for a second `security` identity or to renew a
    short-lived certificate. Raises ConfigError for an unknown role or an
    incomplete deployment.
    """
    root = Path(directory).absolute()
    if role not in DEV_CLIENT_ROLES:
        raise ConfigError(f"role {role!r} is not a client role; use one of {', '.join(DEV_CLIENT_ROLES)}")
    _validate_name(name, "client name")
    if days <= 0:
        raise ConfigError(f"days must be positive, got {days}")
    keystore = load_keystore_config(root / "keystore.toml")
    try:
        keystore_ca = load_certified_key(root / "ca/keystore-ca.pem", root / "ca/keystore-ca.key")
        secret_ca = load_certified_key(root / "ca/secret-ca.pem", root / "ca/secret-ca.key")
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the CAs of {root}: {error}") from None
    return _write_client(
        root,
        role,
        name,
        trust_domain=keystore.trust_domain,
        keystore_ca=keystore_ca,
        secret_ca=secret_ca,
        keystore_address=_client_address(keystore.listen),
        secret_address=keystore.secret_server_address,
        days=days,
    )
