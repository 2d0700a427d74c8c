"""A failing, hanging or vanishing audit sink on the real secret server, and SIGKILL.

Each case must fail the decryption closed (no share leaves the secret server,
the client raises AuditUnavailableError) within about the audit timeout, while
health checks still succeed; or, for a deleted file, log to a new file at the
configured path.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from splitkey.errors import AuditUnavailableError
from tests.audit_fault_server import FaultServerProcess
from tests.audit_server_support import audit_path, create_deployment, read_entries, server_entries, wait_for
from tests.pki_helpers import raw_channel

AUDIT_TIMEOUT_S = 2.0
# Slack for a loaded two-core machine on top of the audit timeout.
MARGIN_S = 4.0
API_KEY = "sk-proj-TESTONLY-sink0000aaaa1111bbbb"


def _start(deployment, *, fault_control: Path | None = None):
    if fault_control is not None:
        deployment.secret = FaultServerProcess("secret", deployment.root / "secret.toml", deployment.root, fault_control)
    deployment.start()
    with deployment.client("app") as app:
        app.add_key("ws-sink", "openai", API_KEY)
    return deployment


@pytest.fixture
def deployment(tmp_path):
    created = create_deployment(tmp_path / "dev")
    yield created
    created.stop()


def _health(deployment, server: str = "secret", timeout_s: float = AUDIT_TIMEOUT_S) -> int:
    """Return the health status of a server, using the auditor's certificate."""
    root = deployment.root
    channel = raw_channel(getattr(deployment, server).port, root / f"ca/{server}-ca.pem",
                          root / f"clients/auditor/{server}.pem", root / f"clients/auditor/{server}.key")
    try:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s).status
    finally:
        channel.close()


def _decrypt(deployment) -> str:
    with deployment.client("worker") as worker:
        return worker.decrypt("ws-sink", "openai").reveal()


def _decrypt_fails_closed(deployment) -> tuple[AuditUnavailableError, float]:
    """Decrypt once, expecting the audit failure; return the error and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(AuditUnavailableError) as raised:
        _decrypt(deployment)
    return raised.value, time.monotonic() - started


def _decrypt_recovers(deployment) -> str:
    """Decrypt until it succeeds again (the writer may still be finishing a stuck write)."""
    def attempt():
        try:
            return _decrypt(deployment)
        except AuditUnavailableError:
            return None
    return wait_for(attempt, timeout_s=15.0, what="a decryption succeeding after the audit sink recovered")


def _unwrap_count(deployment, outcome: str = "allowed") -> int:
    return len(server_entries(deployment, "secret", action="UnwrapShare", outcome=outcome))


def _mount_tmpfs(folder: Path, size: str) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "splitkey-audit-test", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill a real disk (needs root and mount permission): "
                    f"{result.stderr.strip()}; the fault-seam test covers ENOSPC instead")


def _fill(folder: Path) -> Path:
    """Write a file until the file system at `folder` reports ENOSPC; return its path."""
    filler = folder / "filler"
    # Unbuffered, so no buffered rest fails again when the file closes.
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC, f"filling {folder} failed with {error}, not ENOSPC"
    return filler


def test_real_full_disk_fails_unwrap_closed(tmp_path):
    deployment = create_deployment(tmp_path / "dev")
    data = deployment.root / "secret/data"
    _mount_tmpfs(data, "4m")
    try:
        _start(deployment)
        assert _decrypt(deployment) == API_KEY
        filler = _fill(data)
        allowed_before = _unwrap_count(deployment)

        error, elapsed_s = _decrypt_fails_closed(deployment)
        # SQLite reports ENOSPC as SQLITE_FULL, "database or disk is full".
        assert "disk is full" in str(error)
        assert elapsed_s < AUDIT_TIMEOUT_S + MARGIN_S
        assert _health(deployment) == health_pb2.HealthCheckResponse.SERVING
        assert _unwrap_count(deployment) == allowed_before

        filler.unlink()
        assert _decrypt_recovers(deployment) == API_KEY
    finally:
        deployment.stop()
        subprocess.run(["umount", str(data)], check=False)


def test_enospc_seam_fails_unwrap_closed(deployment, tmp_path):
    control = tmp_path / "fault"
    _start(deployment, fault_control=control)
    assert _decrypt(deployment) == API_KEY
    allowed_before = _unwrap_count(deployment)

    deployment.secret.set_fault("enospc")
    error, elapsed_s = _decrypt_fails_closed(deployment)
    assert "No space left on device" in str(error)
    assert elapsed_s < AUDIT_TIMEOUT_S + MARGIN_S
    assert _health(deployment) == health_pb2.HealthCheckResponse.SERVING

    deployment.secret.set_fault("")
    assert _decrypt_recovers(deployment) == API_KEY
    assert _unwrap_count(deployment) == allowed_before + 1


def _health_during(deployment, blocked: threading.Event, results: list) -> None:
    blocked.wait(10)
    started = time.monotonic()
    results.append((_health(deployment, timeout_s=AUDIT_TIMEOUT_S), time.monotonic() - started))


def test_locked_audit_file_fails_within_timeout(deployment):
    _start(deployment)
    assert _decrypt(deployment) == API_KEY

    # Another process's write lock on the audit file: the server's write waits for it.
    holder = sqlite3.connect(audit_path(deployment, "secret"), isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = threading.Event()
        health: list = []
        checker = threading.Thread(target=_health_during, args=(deployment, started, health))
        checker.start()
        started.set()
        error, elapsed_s = _decrypt_fails_closed(deployment)
        checker.join(10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert "audit" in str(error)
    # Well under the client's retry budget (10 s by default): the failure is not retried.
    assert elapsed_s < AUDIT_TIMEOUT_S + MARGIN_S
    assert [status for status, _seconds in health] == [health_pb2.HealthCheckResponse.SERVING]
    assert _decrypt_recovers(deployment) == API_KEY


def test_hanging_write_fails_callers_within_timeout(deployment, tmp_path):
    control = tmp_path / "fault"
    _start(deployment, fault_control=control)
    assert _decrypt(deployment) == API_KEY

    deployment.secret.set_fault("hang")
    try:
        first, first_s = _decrypt_fails_closed(deployment)
        # The writer is now stuck on the first entry; a second caller must not queue behind it.
        second, second_s = _decrypt_fails_closed(deployment)
        assert _health(deployment) == health_pb2.HealthCheckResponse.SERVING
    finally:
        deployment.secret.set_fault("")

    assert "timed out" in str(first)
    assert first_s < AUDIT_TIMEOUT_S + MARGIN_S
    assert "audit" in str(second)
    assert second_s < AUDIT_TIMEOUT_S + MARGIN_S
    assert _decrypt_recovers(deployment) == API_KEY


def test_deleted_audit_file_reopens_at_path(deployment):
    _start(deployment)
    assert _decrypt(deployment) == API_KEY
    path = audit_path(deployment, "secret")
    last_seq = read_entries(path)[-1].seq
    for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        companion.unlink(missing_ok=True)

    assert _decrypt(deployment) == API_KEY
    entries = read_entries(path)
    genesis = entries[0]
    assert genesis.action == "genesis"
    assert "lost" in genesis.reason
    assert genesis.seq > last_seq
    assert [e.action for e in entries if e.action == "UnwrapShare"] == ["UnwrapShare"]


def test_sigkill_after_share_keeps_entry(deployment):
    _start(deployment)
    allowed_before = len(read_entries(audit_path(deployment, "secret")))
    assert _decrypt(deployment) == API_KEY
    deployment.secret.kill()

    assert not deployment.secret.alive()
    entries = read_entries(audit_path(deployment, "secret"))
    unwraps = [e for e in entries if e.action == "UnwrapShare" and e.outcome == "allowed"]
    assert len(unwraps) == 1
    assert len(entries) > allowed_before
