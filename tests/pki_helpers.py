"""Mint certificates against a test deployment and call its servers with raw gRPC stubs.

The client library checks its own certificate before it sends anything, so
tests that must reach a server with a bad certificate or a forbidden request
use the channels built here instead.
"""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

import grpc
import tomli_w

from splitkey.pki.certs import CertifiedKey, load_certified_key, write_certificate, write_private_key
from splitkey.pki.files import PRIVATE_FILE_MODE, write_atomically

TRUST_DOMAIN = "splitkey.test"


def spiffe(role: str, name: str = "dev", trust_domain: str = TRUST_DOMAIN) -> str:
    """Return the SPIFFE URI of a splitkey identity."""
    return f"spiffe://{trust_domain}/{role}/{name}"


def deployment_ca(root: Path, server: str) -> CertifiedKey:
    """Load the CA that issues `server`'s certificate and the client certificates it accepts."""
    return load_certified_key(root / f"ca/{server}-ca.pem", root / f"ca/{server}-ca.key")


def write_pair(folder: Path, name: str, certified: CertifiedKey, *, include_chain: bool = True) -> tuple[Path, Path]:
    """Write `certified` as folder/name.pem and folder/name.key and return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    write_private_key(key_path, certified)
    write_certificate(cert_path, certified, include_chain=include_chain)
    return cert_path, key_path


def write_client_config(
    root: Path,
    path: Path,
    *,
    keystore: tuple[Path, Path] | None = None,
    secret: tuple[Path, Path] | None = None,
    client_options: dict | None = None,
) -> Path:
    """Write a client TOML that reaches the deployment's servers with the given (cert, key) files.

    Addresses and CA files come from the deployment's own client-app.toml. A
    server whose pair is None is left out of the file.
    """
    base = tomllib.loads((root / "client-app.toml").read_text())
    document: dict = {"client": {**base["client"], **(client_options or {})}}
    for server, pair in (("keystore", keystore), ("secret", secret)):
        if pair is None:
            continue
        document[server] = {
            "address": base[server]["address"],
            "cert": str(pair[0]),
            "key": str(pair[1]),
            "ca": str(root / base[server]["ca"]),
        }
    write_atomically(path, tomli_w.dumps(document).encode(), PRIVATE_FILE_MODE)
    return path


def edit_toml(path: Path, table: str, **values) -> None:
    """Set keys of one table in a TOML file."""
    document = tomllib.loads(path.read_text())
    document.setdefault(table, {}).update(values)
    write_atomically(path, tomli_w.dumps(document).encode(), PRIVATE_FILE_MODE)


def raw_channel(port: int, ca: Path, cert: Path | bytes | None = None, key: Path | bytes | None = None) -> grpc.Channel:
    """Open a TLS channel to 127.0.0.1:`port` that trusts `ca` and presents `cert` and `key`, if given."""
    cert_pem = cert.read_bytes() if isinstance(cert, Path) else cert
    key_pem = key.read_bytes() if isinstance(key, Path) else key
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(), private_key=key_pem, certificate_chain=cert_pem
    )
    # A private subchannel pool keeps one test's connection (and its client
    # certificate) from being reused by the next test's channel.
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


def call_raw(channel: grpc.Channel, method: str, request: bytes = b"", *, streaming: bool = False, timeout: float = 10):
    """Call `method` ("/package.Service/Method") with serialized request bytes and return the response bytes.

    Empty bytes are a valid encoding of every proto3 message. Raises grpc.RpcError.
    """
    if streaming:
        return list(channel.unary_stream(method)(request, timeout=timeout))
    return channel.unary_unary(method)(request, timeout=timeout)


def rpc_status(channel: grpc.Channel, method: str, request: bytes = b"", *, streaming: bool = False):
    """Call `method` and return its (code, details), with (OK, "") for a call that succeeded."""
    try:
        call_raw(channel, method, request, streaming=streaming)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def rpc_failure(channel: grpc.Channel, method: str, request: bytes = b"", *, streaming: bool = False):
    """Call `method` and return the failed call's (code, details); fail the test if it succeeded."""
    try:
        response = call_raw(channel, method, request, streaming=streaming)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    raise AssertionError(f"{method} succeeded and returned {len(response)} bytes; it should have failed")


def wait_for_log(read_log, pattern: str, start: int = 0, timeout_s: float = 10.0, hint: str = "") -> str:
    """Wait until the log text after offset `start` matches `pattern` and return that text.

    `hint` is added to the failure message, for a likely cause of the missing line.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        text = read_log()[start:]
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no log line matching {pattern!r} within {timeout_s} s. {hint}\nLog since start:\n{text}"
            )
        time.sleep(0.1)
