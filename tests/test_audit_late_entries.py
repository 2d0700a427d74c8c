"""Late entries for calls that failed closed because their audit entry could not be written.

The call must still fail (nothing released), and once the log can be written
again it must name the call: its request id with outcome "error". A write that
timed out but committed afterwards already names the call, so it gets no late
entry.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import sqlite3
import threading

import nacl.signing
import pytest

from splitkey.audit import AuditLog, verify_export
from splitkey.audit.failed_closed import FAILED_CLOSED_ACTION
from splitkey.errors import AuditUnavailableError
from tests.audit_fault_server import FaultServerProcess
from tests.audit_server_support import audit_path, create_deployment, server_entries, wait_for
from tests.test_audit_support import denial, export_file, use_record

API_KEY = "sk-proj-TESTONLY-late0000aaaa1111bbbb"
LATE_PREFIX = "late entry: the audit write failed, so the call failed closed"


class FullDiskLog(AuditLog):
    """A log whose writes fail with ENOSPC while `disk_full` is set."""

    disk_full = False

    def _write_rows(self, log_file, entries, heads):
        if self.disk_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super()._write_rows(log_file, entries, heads)


class HeldWriteLog(AuditLog):
    """A log whose next write after `hold_next()` waits for `release`, then commits or fails with EIO."""

    def __init__(self, *args, **kwargs):
        # Set before the base class writes the genesis entry through _write_rows.
        self.held = threading.Event()
        self.release = threading.Event()
        self.fail_after_release = False
        self._hold = False
        super().__init__(*args, **kwargs)

    def hold_next(self) -> None:
        self._hold = True

    def _write_rows(self, log_file, entries, heads):
        if self._hold:
            self._hold = False
            self.held.set()
            assert self.release.wait(30), "the test never released the held write"
            if self.fail_after_release:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        super()._write_rows(log_file, entries, heads)


def _append_in_thread(log: AuditLog, record) -> tuple[threading.Thread, list]:
    """Start `log.append(record)` on a thread; return it and the list that receives its outcome."""
    outcome: list = []

    def append():
        try:
            outcome.append(log.append(record))
        except AuditUnavailableError as error:
            outcome.append(error)

    thread = threading.Thread(target=append)
    thread.start()
    return thread, outcome


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


@pytest.fixture
def deployment(tmp_path):
    created = create_deployment(tmp_path / "dev")
    yield created
    created.stop()


def test_timed_out_unwrap_that_fails_gets_late_entry(deployment, monkeypatch):
    deployment.start()
    with deployment.client("app") as app:
        app.add_key("ws-late", "openai", API_KEY)
    failed_request_id = secrets.token_hex(16)
    monkeypatch.setattr("client.key_client._new_request_id", lambda: failed_request_id)

    # Another process's write lock on the audit file makes the server's write wait past the audit
    # timeout. The lock is held until SQLite's busy timeout fails that write, so it never commits.
    holder = sqlite3.connect(audit_path(deployment, "secret"), isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with deployment.client("worker") as worker:
            with pytest.raises(AuditUnavailableError):
                worker.decrypt("ws-late", "openai")
        wait_for(lambda: "write failed: database is locked" in deployment.secret.stderr(), timeout_s=30.0,
                 what="the secret server's audit write failing on the locked file")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    monkeypatch.undo()

    def late_entries():
        return [e for e in server_entries(deployment, "secret", action="UnwrapShare", request_id=failed_request_id)
                if e.outcome == "error"]

    (late,) = wait_for(late_entries, timeout_s=15.0, what="the late entry of the unwrap that failed closed")
    (fetch,) = server_entries(deployment, "keystore", action="FetchKey", request_id=failed_request_id)
    assert late.reason.startswith(LATE_PREFIX)
    assert (late.actor, late.context_hash, late.record_id) == (fetch.actor, fetch.context_hash, fetch.record_id)

    with deployment.client("worker") as worker:
        assert worker.decrypt("ws-late", "openai").reveal() == API_KEY
    unwraps = server_entries(deployment, "secret", action="UnwrapShare", request_id=failed_request_id)
    assert [e.outcome for e in unwraps] == ["error"]


def _decrypt_once_recovered(deployment) -> str:
    """Decrypt until it succeeds; the writer may still be finishing the write that hung."""
    def attempt():
        try:
            with deployment.client("worker") as worker:
                return worker.decrypt("ws-late", "openai").reveal()
        except AuditUnavailableError:
            return None

    return wait_for(attempt, timeout_s=15.0, what="a decryption succeeding after the hung write finished")


def test_timed_out_unwrap_that_commits_not_late(deployment, tmp_path, monkeypatch):
    control = tmp_path / "fault"
    deployment.secret = FaultServerProcess("secret", deployment.root / "secret.toml", deployment.root, control)
    deployment.start()
    with deployment.client("app") as app:
        app.add_key("ws-late", "openai", API_KEY)
    failed_request_id = secrets.token_hex(16)
    monkeypatch.setattr("client.key_client._new_request_id", lambda: failed_request_id)

    # The write hangs past the audit timeout and then commits once the fault is cleared.
    deployment.secret.set_fault("hang")
    try:
        with deployment.client("worker") as worker:
            with pytest.raises(AuditUnavailableError, match="timed out"):
                worker.decrypt("ws-late", "openai")
    finally:
        deployment.secret.set_fault("")
    monkeypatch.undo()

    # The writer writes late entries right after the write that hung and before any later one,
    # so once a later decryption succeeds, a late entry for the failed call would be in the log.
    assert _decrypt_once_recovered(deployment) == API_KEY
    unwraps = server_entries(deployment, "secret", action="UnwrapShare", request_id=failed_request_id)
    assert [e.outcome for e in unwraps] == ["allowed"]
    assert "committed after its caller gave up" in deployment.secret.stderr()


@pytest.mark.parametrize("commits", [True, False], ids=["commits", "fails"])
def test_abandoned_append_late_only_if_failed(tmp_path, key, caplog, commits):
    log = HeldWriteLog(tmp_path / "audit.sqlite3", server_id="secret-1", signing_key=key, timeout_s=1.0)
    log.append(use_record("req-before", action="UnwrapShare"))
    log.hold_next()
    log.fail_after_release = not commits

    thread, outcome = _append_in_thread(log, use_record("req-held", action="UnwrapShare"))
    assert log.held.wait(10), "the append never reached the disk write"
    thread.join(30)
    with caplog.at_level(logging.WARNING, logger="splitkey.audit.log"):
        log.release.set()
        log.close()
    entries = [e for e in log.entries() if e.request_id == "req-held"]

    (error,) = outcome
    assert isinstance(error, AuditUnavailableError)
    assert "timed out" in str(error)
    if commits:
        assert [e.outcome for e in entries] == ["allowed"]
        assert "committed after its caller gave up" in caplog.text
    else:
        assert [e.outcome for e in entries] == ["error"]
        assert entries[0].reason.startswith(LATE_PREFIX)
        assert "Input/output error" in entries[0].reason
        assert "committed after its caller gave up" not in caplog.text
    report = verify_export(export_file(log, tmp_path / "export.jsonl"))
    assert report.ok, str(report)


def test_failed_append_written_late_in_order(tmp_path, key):
    log = FullDiskLog(tmp_path / "audit.sqlite3", server_id="secret-1", signing_key=key, timeout_s=10)
    last = log.append(use_record("req-1", action="UnwrapShare"))
    log.disk_full = True
    with pytest.raises(AuditUnavailableError, match="No space left"):
        log.append(use_record("req-2", action="UnwrapShare"))
    with pytest.raises(AuditUnavailableError):
        log.append(denial(reason="role 'app' may not call UnwrapShare"))

    log.disk_full = False
    next_seq = log.append(use_record("req-3", action="UnwrapShare"))
    log.close()
    entries = list(log.entries(since_seq=last))

    assert [(e.request_id, e.outcome) for e in entries[:3]] == [("req-2", "error"), ("", "denied"), ("req-3", "allowed")]
    assert next_seq == last + 3
    assert entries[0].reason.startswith(LATE_PREFIX)
    assert "No space left" in entries[0].reason
    assert entries[0].action == "UnwrapShare"
    assert "the call's reason: role 'app' may not call UnwrapShare" in entries[1].reason
    report = verify_export(export_file(log, tmp_path / "export.jsonl"))
    assert report.ok, str(report)


def test_late_records_capped_and_counted(tmp_path, key, monkeypatch):
    monkeypatch.setattr("splitkey.audit.failed_closed.MAX_LATE_RECORDS", 2)
    log = FullDiskLog(tmp_path / "audit.sqlite3", server_id="secret-1", signing_key=key, timeout_s=10)
    log.disk_full = True
    for number in range(5):
        with pytest.raises(AuditUnavailableError):
            log.append(use_record(f"req-{number}"))

    log.disk_full = False
    log.append(use_record("req-after"))
    log.close()
    late = [e for e in log.entries() if e.outcome == "error"]
    named = [e.request_id for e in late if e.action != FAILED_CLOSED_ACTION]
    (summary,) = [e for e in late if e.action == FAILED_CLOSED_ACTION]

    # The writer may take the kept records before req-4 is noted, so req-4 can still fit in memory.
    assert named[:2] == ["req-0", "req-1"]
    assert len(named) + summary.count == 5
    assert summary.count >= 2
    assert f"{summary.count} more calls failed closed" in summary.reason
