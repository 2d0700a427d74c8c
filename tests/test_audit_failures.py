"""AuditLog under a failing, hanging or vanishing disk, and after SIGKILL.

Each failure must make `append` raise AuditUnavailableError quickly (so the
server releases nothing), or, for a deleted file, land the entry in a new file
at the configured path. An append that returned must survive SIGKILL.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nacl.signing
import pytest

from splitkey.audit import AuditLog, verify_export
from splitkey.errors import AuditUnavailableError, ConfigError
from tests.test_audit_support import export_file, open_log, use_record

REPO_ROOT = Path(__file__).resolve().parents[1]
# Slack for a loaded two-core machine on top of the configured timeouts.
MARGIN_S = 4.0


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


class FullDiskLog(AuditLog):
    """A log whose writes fail with ENOSPC while `disk_full` is set."""

    disk_full = False

    def _write_rows(self, log_file, entries, heads):
        if self.disk_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super()._write_rows(log_file, entries, heads)


class StuckDiskLog(AuditLog):
    """A log whose writes block until `release` is set, while `stuck` is set."""

    stuck = False

    def __init__(self, *args, **kwargs):
        self.entered = threading.Event()
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _write_rows(self, log_file, entries, heads):
        if self.stuck:
            self.entered.set()
            self.release.wait(30)
        super()._write_rows(log_file, entries, heads)


class VanishingFileLog(AuditLog):
    """A log whose file is deleted right after the next write commits, while `vanish` is set."""

    vanish = False

    def _write_rows(self, log_file, entries, heads):
        super()._write_rows(log_file, entries, heads)
        if self.vanish:
            self.vanish = False
            os.unlink(self.path)


def append_once_recovered(log: AuditLog, record) -> int:
    """Append, retrying while the writer still reports the stuck write it is finishing."""
    deadline = time.monotonic() + MARGIN_S
    while True:
        try:
            return log.append(record)
        except AuditUnavailableError as error:
            if "stuck" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_entries(path: Path) -> list[sqlite3.Row]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM entries ORDER BY seq").fetchall()
    finally:
        connection.close()


def test_enospc_fails_append_quickly(tmp_path, key):
    log = FullDiskLog(tmp_path / "audit.sqlite3", server_id="secret-1", signing_key=key, timeout_s=10)
    last = log.append(use_record("req-1"))
    log.disk_full = True

    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="No space left"):
        log.append(use_record("req-2"))
    elapsed = time.monotonic() - started

    log.disk_full = False
    next_seq = log.append(use_record("req-3"))
    log.close()
    report = verify_export(export_file(log, tmp_path / "export.jsonl"))

    assert elapsed < MARGIN_S
    # The late entry of the failed req-2 is written just before req-3.
    assert next_seq == last + 2
    assert [(e.request_id, e.outcome) for e in log.entries(since_seq=last)] == [("req-2", "error"), ("req-3", "allowed")]
    assert report.ok, str(report)


def test_real_file_size_limit_fails_append(tmp_path):
    # RLIMIT_FSIZE makes the kernel fail writes with EFBIG, which SQLite reports
    # as "database or disk is full": a real write failure, set only in a child.
    script = textwrap.dedent(
        """
        import resource, signal, sys, time
        from pathlib import Path
        import nacl.signing
        from splitkey.audit import AuditLog
        from splitkey.errors import AuditUnavailableError
        from tests.test_audit_support import use_record

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        path = Path(sys.argv[1])
        log = AuditLog(path, server_id="secret-1", signing_key=nacl.signing.SigningKey.generate(), timeout_s=10)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))
        for i in range(100_000):
            started = time.monotonic()
            try:
                log.append(use_record(f"req-{i}", reason="x" * 500))
            except AuditUnavailableError as error:
                print("unavailable", round(time.monotonic() - started, 3), i, error, flush=True)
                print("readable", len(list(log.entries())), flush=True)
                sys.exit(0)
        print("never failed", flush=True)
        sys.exit(1)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "audit.sqlite3")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    first, second = result.stdout.splitlines()[:2]
    _, elapsed, appended, *message = first.split(" ")
    assert float(elapsed) < MARGIN_S
    assert int(appended) > 0
    assert "could not be written" in " ".join(message)
    assert int(second.split()[1]) >= int(appended)


def test_stuck_writer_fails_callers_within_timeout(tmp_path, key):
    timeout_s = 1.0
    log = StuckDiskLog(tmp_path / "audit.sqlite3", server_id="secret-1", signing_key=key, timeout_s=timeout_s)
    log.append(use_record("req-before"))
    log.stuck = True
    outcomes: dict[str, object] = {}

    def first_caller():
        started = time.monotonic()
        try:
            log.append(use_record("req-stuck"))
            outcomes["stuck"] = "returned"
        except AuditUnavailableError:
            outcomes["stuck"] = time.monotonic() - started

    caller = threading.Thread(target=first_caller)
    caller.start()
    assert log.entered.wait(10)

    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="timed out"):
        log.append(use_record("req-queued"))
    queued_elapsed = time.monotonic() - started
    caller.join(timeout_s + MARGIN_S)

    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="stuck"):
        log.append(use_record("req-later"))
    later_elapsed = time.monotonic() - started

    reads: dict[str, object] = {}
    reader = threading.Thread(target=lambda: reads.update(
        entries=len(list(log.entries())), head=log.latest_head().seq, checkpoints=len(log.checkpoints())
    ))
    reader.start()
    reader.join(MARGIN_S)
    reader_done = not reader.is_alive()

    log.stuck = False
    log.release.set()
    after = append_once_recovered(log, use_record("req-after"))
    log.close()
    entries = list(log.entries())
    request_ids = [e.request_id for e in entries]

    assert queued_elapsed < timeout_s + MARGIN_S
    assert isinstance(outcomes["stuck"], float) and outcomes["stuck"] < timeout_s + MARGIN_S
    assert later_elapsed < MARGIN_S
    assert reader_done
    assert reads["entries"] == 2
    assert after > 0
    # The write that hung finishes once the disk recovers; queued ones never run,
    # so their only entries are the late ones with outcome "error".
    assert [e.outcome for e in entries if e.request_id == "req-queued"] == ["error"]
    assert [e.outcome for e in entries if e.request_id == "req-later"] == ["error"]
    assert request_ids[-1] == "req-after"


@pytest.mark.parametrize("companions", [(), ("-wal", "-shm")], ids=["database-only", "with-wal-and-shm"])
def test_deleted_file_reopens_at_path(tmp_path, key, companions):
    path = tmp_path / "audit.sqlite3"
    log = open_log(path, "secret-1", key)
    log.append(use_record("req-1"))
    old_head = list(log.entries())[-1]

    for suffix in ("",) + companions:
        Path(str(path) + suffix).unlink()
    seq = log.append(use_record("req-2"))
    rows = read_entries(path)
    log.close()
    report = verify_export(export_file(log, tmp_path / "export.jsonl"),
                           public_key_hex=log.public_key)

    assert [row["request_id"] for row in rows if row["seq"] == seq] == ["req-2"]
    assert "req-1" not in [row["request_id"] for row in rows]
    assert rows[0]["action"] == "genesis"
    assert rows[0]["seq"] == old_head.seq + 1
    assert rows[0]["prev_hash"] == old_head.entry_hash
    assert str(old_head.seq) in rows[0]["reason"]
    assert report.kinds() == {"anchor"}, str(report)


def test_file_deleted_during_write_is_not_success(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    log = VanishingFileLog(path, server_id="secret-1", signing_key=key)
    log.vanish = True

    with pytest.raises(AuditUnavailableError, match="deleted or replaced"):
        log.append(use_record("req-lost"))
    seq = log.append(use_record("req-next"))
    rows = read_entries(path)
    log.close()

    # Only the late entry, written once the new file works, names req-lost.
    assert [row["outcome"] for row in rows if row["request_id"] == "req-lost"] == ["error"]
    assert [row["request_id"] for row in rows if row["seq"] == seq] == ["req-next"]


def test_foreign_file_at_path_fails_closed(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    foreign = tmp_path / "other.sqlite3"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.commit()
    connection.close()
    foreign_bytes = foreign.read_bytes()
    log = open_log(path, "secret-1", key)
    log.append(use_record("req-1"))

    os.replace(foreign, path)
    with pytest.raises(AuditUnavailableError, match="replaced"):
        log.append(use_record("req-2"))
    with pytest.raises(AuditUnavailableError, match="replaced"):
        log.append(use_record("req-3"))
    assert path.read_bytes() == foreign_bytes

    path.unlink()
    seq = log.append(use_record("req-4"))
    log.close()
    assert [row["request_id"] for row in read_entries(path) if row["seq"] == seq] == ["req-4"]


def test_foreign_file_rejected_at_start(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    path.write_bytes(b"not a database, but somebody's notes" * 200)

    with pytest.raises(ConfigError, match="not a splitkey audit log"):
        open_log(path, "secret-1", key)
    assert path.read_bytes().startswith(b"not a database")


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import nacl.signing
    from splitkey.audit import AuditLog
    from tests.test_audit_support import use_record

    path, seed, count = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
    log = AuditLog(path, server_id="secret-1", signing_key=nacl.signing.SigningKey(seed))
    i = 0
    while count == 0 or i < count:
        seq = log.append(use_record(f"req-{i}", action="UnwrapShare"))
        print(seq, f"req-{i}", flush=True)
        i += 1
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _child(path: Path, key: nacl.signing.SigningKey, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), bytes(key).hex(), str(count)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, text=True,
    )


def _stored(path: Path, key: nacl.signing.SigningKey) -> dict[int, str]:
    log = open_log(path, "secret-1", key)
    try:
        return {e.seq: e.request_id for e in log.entries()}
    finally:
        log.close()


def test_append_survives_sigkill_right_after_return(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    child = _child(path, key, 25)
    output, _ = child.communicate(timeout=120)
    printed = {int(seq): request_id for seq, request_id in (line.split() for line in output.splitlines())}

    stored = _stored(path, key)

    assert child.returncode == -signal.SIGKILL
    assert len(printed) == 25
    for seq, request_id in printed.items():
        assert stored.get(seq) == request_id


def test_append_survives_external_sigkill(tmp_path, key):
    path = tmp_path / "audit.sqlite3"
    child = _child(path, key, 0)
    printed: dict[int, str] = {}
    assert child.stdout is not None
    for line in child.stdout:
        seq, request_id = line.split()
        printed[int(seq)] = request_id
        if len(printed) == 30:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    child.stdout.close()

    stored = _stored(path, key)

    assert child.returncode == -signal.SIGKILL
    for seq, request_id in printed.items():
        assert stored.get(seq) == request_id
