"""Test helpers below the client library: raw mTLS channels, edited client configurations, row edits."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import grpc
import tomli_w

from splitkey.config import load_client_config
from splitkey.tls import client_credentials
from splitkey.v1 import keystore_pb2_grpc, secret_pb2_grpc

TRUST_DOMAIN = "splitkey.test"


def raw_channel(deployment, role: str, server: str) -> grpc.Channel:
    """Open an mTLS channel to `server` ("keystore" or "secret") as `role`, without the client library."""
    config = load_client_config(deployment.client_config(role))
    endpoint = getattr(config, server)
    credentials, _info = client_credentials(endpoint.tls)
    return grpc.secure_channel(endpoint.address, credentials)


def keystore_stub(channel: grpc.Channel) -> keystore_pb2_grpc.KeystoreStub:
    return keystore_pb2_grpc.KeystoreStub(channel)


def secret_stub(channel: grpc.Channel) -> secret_pb2_grpc.SecretServerStub:
    return secret_pb2_grpc.SecretServerStub(channel)


def write_client_config(deployment, role: str, name: str, changes: dict[str, dict]) -> Path:
    """Copy client-<role>.toml to `name` in the deployment folder, merging `changes` into its tables."""
    document = tomllib.loads(deployment.client_config(role).read_text())
    for table, values in changes.items():
        document.setdefault(table, {}).update(values)
    path = deployment.root / name
    path.write_text(tomli_w.dumps(document))
    return path


def keystore_database(deployment) -> Path:
    return deployment.root / "keystore" / "data" / "keystore.sqlite3"


def open_database(path: Path) -> sqlite3.Connection:
    """Open a server's SQLite file from the test process, in autocommit mode like the servers."""
    connection = sqlite3.connect(path, timeout=10, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection
