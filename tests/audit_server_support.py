"""Helpers for audit tests against the real servers: deployments, log files, the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from splitkey.audit.entry import AuditEntry
from splitkey.audit.store import entry_from_row, open_reader
from tests.pki_helpers import edit_toml
from tests.servers import REPO_ROOT, Deployment

# Seconds between head exchanges in test deployments, so witnessing shows up quickly.
WITNESS_INTERVAL_S = 0.2


def create_deployment(root: Path, **audit_options) -> Deployment:
    """Create (but do not start) a deployment whose keystore exchanges heads every WITNESS_INTERVAL_S."""
    deployment = Deployment.create(root)
    edit_toml(root / "keystore.toml", "audit", witness_interval_s=WITNESS_INTERVAL_S, **audit_options)
    if audit_options:
        edit_toml(root / "secret.toml", "audit", **audit_options)
    return deployment


def audit_path(deployment: Deployment, server: str) -> Path:
    return deployment.root / server / "data" / "audit.sqlite3"


def read_entries(path: Path) -> list[AuditEntry]:
    """Read every entry of an audit file with a read-only connection, as an auditor on the host would."""
    connection = open_reader(path)
    try:
        return [entry_from_row(row) for row in connection.execute("SELECT * FROM entries ORDER BY seq")]
    finally:
        connection.close()


def server_entries(deployment: Deployment, server: str, **match: str) -> list[AuditEntry]:
    """Return the entries of a server's log whose fields equal every value in `match`."""
    return [
        entry for entry in read_entries(audit_path(deployment, server))
        if all(getattr(entry, name) == value for name, value in match.items())
    ]


def certificate_fingerprint(pem_path: Path) -> str:
    """Return the SHA-256 of the DER form of the first certificate in a PEM file."""
    certificate = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value and return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)


def run_audit_cli(deployment: Deployment, *args: str, role: str = "auditor") -> subprocess.CompletedProcess:
    """Run `splitkey audit ARGS` with the deployment's client configuration of `role`."""
    return subprocess.run(
        [sys.executable, "-m", "client.cli.main", "audit", *args, "--config", str(deployment.client_config(role))],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
