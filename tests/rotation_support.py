"""Helpers for rotation, revocation and backup tests: keys, keyrings, row snapshots, decrypt load."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from client.admin_client import AdminClient
from splitkey import record
from splitkey.context import Context
from splitkey.kek import load_keyring
from tests.servers import Deployment

TRUST_DOMAIN = "splitkey.test"
RECORDING_PATH = Path(__file__).resolve().parent / "recording"


def api_key(index: int, generation: int = 0) -> str:
    return f"sk-proj-TESTONLY-rot{generation:02d}x{index:05d}abcd"


def workspace(index: int) -> str:
    return f"ws-{index:04d}"


def add_keys(deployment: Deployment, count: int, generation: int = 0) -> dict[str, str]:
    """Store one openai key in each of `count` workspaces; return {workspace: key}."""
    keys = {}
    with deployment.client("app") as app:
        for index in range(count):
            keys[workspace(index)] = api_key(index, generation)
            app.add_key(workspace(index), "openai", keys[workspace(index)])
    return keys


def admin(deployment: Deployment, name: str = "") -> AdminClient:
    config = deployment.root / (f"client-security-{name}.toml" if name else "client-security.toml")
    return AdminClient.from_config(config)


def wait_for_job(client: AdminClient, kind: str, timeout_s: float = 120.0):
    """Poll until the latest job of `kind` leaves "running"; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = client.status(kind)
        if jobs and jobs[0].state != "running":
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"{kind} job still running after {timeout_s} s: {client.status(kind)}")


def wait_for_progress(client: AdminClient, kind: str, rows: int, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.status(kind)[0]
        if job.rows_done >= rows or job.state != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"{kind} job did not reach {rows} rows in {timeout_s} s")


def keystore_db(deployment: Deployment) -> Path:
    return deployment.root / "keystore" / "data" / "keystore.sqlite3"


def rows(deployment: Deployment) -> dict[str, sqlite3.Row]:
    """Every records row by record_id, read from the keystore database file."""
    connection = sqlite3.connect(keystore_db(deployment), timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        return {item["record_id"]: item for item in connection.execute("SELECT * FROM records")}
    finally:
        connection.close()


def keyrings(deployment: Deployment):
    """Both KEKs of the development deployment, as the test's own view of the two hosts."""
    root = deployment.root
    kek_a = load_keyring(root / "keystore/kek-a.keyring.json", (root / "keystore/kek-a.passphrase").read_bytes())
    kek_b = load_keyring(root / "secret/kek-b.keyring.json", (root / "secret/kek-b.passphrase").read_bytes())
    return kek_a, kek_b


def shares(row, kek_a, kek_b) -> tuple[bytes, bytes]:
    """Unwrap (share_a, share_b) of one row with the test's copies of both KEKs."""
    context = Context(deployment=TRUST_DOMAIN, workspace=row["workspace"], provider=row["provider"],
                      record_id=row["record_id"])
    share_a = record.unwrap_share(kek_a.key(row["kek_a_version"]), row["wrap_a"], context, "share-a")
    share_b = record.unwrap_share(kek_b.key(row["kek_b_version"]), row["wrap_b"], context, "share-b")
    return share_a, share_b


@dataclass
class DecryptLoad:
    """Threads that decrypt random stored keys in a loop and keep every failure."""

    deployment: Deployment
    keys: dict[str, str]
    threads: int = 2
    successes: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        names = sorted(self.keys)
        with self.deployment.client("worker") as worker:
            while not self._stop.is_set():
                name = random.choice(names)
                try:
                    value = worker.decrypt(name, "openai").reveal()
                    ok = value == self.keys[name]
                    detail = f"{name}: wrong key" if not ok else ""
                except Exception as error:  # noqa: BLE001 - every failure is collected and asserted on
                    ok, detail = False, f"{name}: {type(error).__name__}: {error}"
                with self._lock:
                    if ok:
                        self.successes += 1
                    else:
                        self.failures.append(detail)

    def __enter__(self) -> "DecryptLoad":
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)
