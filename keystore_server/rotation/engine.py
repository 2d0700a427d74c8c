"""The re-wrap job runner: batched, rate-limited, online and resumable.

One thread per running job. Each batch is read, re-wrapped outside any
transaction, then written in one BEGIN IMMEDIATE transaction together with
the job's cursor and counters; each row is written only if its row_version
is unchanged (compare-and-swap). A pass ends when no row after the cursor
still needs work; rows skipped by a lost compare-and-swap are picked up by
the next pass. A pass that re-wraps nothing while rows remain ends the job as
failed and names those rows.

When the secret server is unreachable the job keeps its state "running",
records the error and retries with exponential backoff (0.5 s up to 10 s).
"""

from __future__ import annotations

import logging
import threading
import time

from keystore_server.rotation import records
from keystore_server.rotation.jobs import DONE, FAILED, RUNNING, Job, JobStore
from keystore_server.rotation.rewrap import Failure, rewrap_kek_a, rewrap_kek_b
from keystore_server.rows import RowMac
from splitkey.errors import InvalidInputError, PreconditionError, SplitkeyError

_logger = logging.getLogger(__name__)

KINDS = ("kek-a", "kek-b")
DEFAULT_BATCH_SIZE = 64
# RewrapShares accepts at most this many items per call, which keeps one
# request under the servers' 64 KiB message limit (about 180 bytes per item).
MAX_BATCH_SIZE = 256
DEFAULT_ROWS_PER_SECOND = 2000
_MIN_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0


def validate_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


class RewrapEngine:
    def __init__(self, *, db, keyring, deployment: str, link, access=None, modes=None):
        self._db = db
        self._jobs = JobStore(db)
        self._keyring = keyring
        self._macs = RowMac(keyring, deployment)
        self._deployment = deployment
        self._link = link
        self._access = access
        self._modes = modes
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._failures: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    @property
    def jobs(self) -> JobStore:
        return self._jobs

    # -- control -----------------------------------------------------------------

    def resume_all(self) -> None:
        """Start a thread for every job left running by an earlier process."""
        with self._db.read() as connection:
            pending = JobStore.running(connection)
        for job in pending:
            _logger.info("resuming %s re-wrap job %s at pass %d after %s", job.kind, job.job_id, job.pass_number,
                         job.cursor or "the start")
            self._spawn(job)

    def start(self, kind: str, batch_size: int = 0, rate: int = 0) -> Job:
        """Start a re-wrap job of `kind` towards the active version, or return the one already running."""
        validate_kind(kind)
        batch_size = batch_size or DEFAULT_BATCH_SIZE
        rate = rate or DEFAULT_ROWS_PER_SECOND
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise InvalidInputError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
        target = self.active_version(kind)
        with self._lock:
            with self._db.write() as connection:
                running = JobStore.running(connection, kind)
                if running:
                    return running[0]
                rows_total = records.count_not_at(connection, kind, target)
                job = self._jobs.create(connection, kind, target, rows_total, batch_size, rate)
            _logger.info("started %s re-wrap job %s to version %d: %d rows, batch %d, %d rows/s",
                         kind, job.job_id, target, rows_total, batch_size, rate)
            self._spawn(job)
        return job

    def active_version(self, kind: str) -> int:
        """Return the active version of `kind`; for KEK-B this calls KekVersions on the secret server."""
        return self._keyring.active_version if kind == "kek-a" else self._link.kek_versions().active_version

    def check_no_running_job(self, kind: str) -> None:
        """Raise PreconditionError while a re-wrap job of `kind` runs, naming the job and its progress.

        A version added or activated during a job would not be the job's
        target, so rows would stay on the old version after it ends.
        """
        with self._db.read() as connection:
            running = JobStore.running(connection, kind)
        if running:
            job = running[0]
            raise PreconditionError(running_job_message(job.kind, job.job_id, job.target_version, job.rows_done,
                                                        self.rows_left(job)))

    def _spawn(self, job: Job) -> None:
        thread = threading.Thread(target=self._run, args=(job,), name=f"rewrap-{job.kind}", daemon=True)
        self._threads[job.job_id] = thread
        thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout_s)

    def wait(self, job_id: str, timeout_s: float) -> None:
        """Block until a job's thread ends (tests and benchmarks)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout_s)

    # -- status ------------------------------------------------------------------

    def rows_left(self, job: Job) -> int:
        return records.count_not_at(self._db.connection(), job.kind, job.target_version)

    # -- the job loop ------------------------------------------------------------

    def _run(self, job: Job) -> None:
        failures = self._failures.setdefault(job.job_id, {})
        pass_start_done = job.rows_done
        backoff = _MIN_BACKOFF_S
        while not self._stop.is_set() and job.state == RUNNING:
            started = time.monotonic()
            try:
                count, pass_start_done = self._step(job, failures, pass_start_done)
            except SplitkeyError as error:
                self._record_error(job, str(error), backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            except Exception as error:  # noqa: BLE001 - the job thread must survive and report
                _logger.exception("%s re-wrap job %s: unexpected error", job.kind, job.job_id)
                self._record_error(job, f"internal error: {type(error).__name__}", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            backoff = _MIN_BACKOFF_S
            # Rate limit: a batch of n rows takes at least n / rate seconds.
            pause = count / job.max_rows_per_second - (time.monotonic() - started)
            if pause > 0:
                self._stop.wait(pause)
        _logger.info("%s re-wrap job %s ended: %s, %d rows re-wrapped", job.kind, job.job_id, job.state, job.rows_done)

    def _record_error(self, job: Job, message: str, backoff: float) -> None:
        _logger.warning("%s re-wrap job %s: %s; retrying in %.1f s", job.kind, job.job_id, message, backoff)
        job.last_error = message
        try:
            self._jobs.save_now(job)
        except SplitkeyError:
            _logger.warning("could not record the error of re-wrap job %s", job.job_id)

    def _step(self, job: Job, failures: dict[str, str], pass_start_done: int) -> tuple[int, int]:
        """Run one batch; return (rows read, rows_done at the start of the current pass)."""
        with self._db.read() as connection:
            batch = records.next_batch(connection, job.kind, job.target_version, job.cursor, job.batch_size)
        if not batch:
            return 0, self._end_pass(job, failures, pass_start_done)

        if job.kind == "kek-a":
            done, failed = rewrap_kek_a(
                batch, keyring=self._keyring, macs=self._macs, deployment=self._deployment, target=job.target_version
            )
        else:
            done, failed = rewrap_kek_b(
                batch, keyring=self._keyring, macs=self._macs, deployment=self._deployment, link=self._link
            )
        self._note_failures(job, failed, failures)
        with self._db.write() as connection:
            written = sum(1 for item in done if records.swap(connection, item.old, item.new))
            if job.kind == "kek-b":
                # The secret server may have activated a newer version while the job runs.
                newest = max((item.new.kek_b_version for item in done), default=job.target_version)
                job.target_version = max(job.target_version, newest)
            job.rows_done += written
            job.cursor = batch[-1].record_id
            job.last_error = ""
            JobStore.save(connection, job)
        return len(batch), pass_start_done

    def _note_failures(self, job: Job, failed: list[Failure], failures: dict[str, str]) -> None:
        for item in failed:
            if item.record_id not in failures:
                _logger.error("%s re-wrap job %s: record %s not re-wrapped: %s",
                              job.kind, job.job_id, item.record_id, item.reason)
            failures[item.record_id] = item.reason

    def _end_pass(self, job: Job, failures: dict[str, str], pass_start_done: int) -> int:
        active = self.active_version(job.kind)
        if active != job.target_version:
            # Another version was activated while the job ran (the secret server
            # cannot see keystore jobs), so move the rows on to it rather than end
            # as done with rows on a version that is no longer active.
            _logger.warning("%s re-wrap job %s: version %d became active; re-wrapping to it instead of version %d",
                            job.kind, job.job_id, active, job.target_version)
            job.target_version = active
            job.cursor = ""
            job.pass_number += 1
            self._jobs.save_now(job)
            return job.rows_done
        left = records.count_not_at(self._db.connection(), job.kind, job.target_version)
        if left == 0:
            if job.kind == "kek-a":
                self._resign_kek_a_state(job.target_version)
            job.state = DONE
            job.last_error = ""
            self._jobs.save_now(job)
            return job.rows_done
        if job.rows_done > pass_start_done:
            job.cursor = ""
            job.pass_number += 1
            self._jobs.save_now(job)
            return job.rows_done
        named = ", ".join(f"{record_id} ({reason})" for record_id, reason in list(failures.items())[:10])
        job.state = FAILED
        job.last_error = f"{left} rows could not be re-wrapped: {named or 'changed concurrently on every attempt'}"
        self._jobs.save_now(job)
        return job.rows_done

    def _resign_kek_a_state(self, target: int) -> None:
        """Sign the access rules and workspace modes under the new KEK-A version, so the old one can retire."""
        if self._access is not None:
            self._access.resign()
        if self._modes is not None:
            resign_workspace_modes(self._db, self._modes, target)


def running_job_message(kind: str, job_id: str, target: int, rows_done: int, rows_left: int) -> str:
    return (
        f"{kind} re-wrap job {job_id} to version {target} is still running ({rows_done} rows done, {rows_left} left); "
        f"wait until 'splitkey rotate status' shows it done, then add or activate another {kind} version"
    )


def resign_workspace_modes(db, modes, target: int) -> int:
    """Re-sign every workspaces row not yet under KEK-A `target`; return how many were written."""
    connection = db.connection()
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workspaces'").fetchone()
    if exists is None:
        return 0
    pending = connection.execute(
        "SELECT workspace, mode, row_version, mac_version FROM workspaces WHERE mac_version != ?", (target,)
    ).fetchall()
    written = 0
    for found in pending:
        # mode_of checks the current MAC, so a tampered row fails here rather than being signed again.
        mode = modes.mode_of(found["workspace"])
        mac_version, mac = modes.sign(found["workspace"], mode, found["row_version"])
        with db.write() as writer:
            cursor = writer.execute(
                "UPDATE workspaces SET mac_version = ?, mac = ? WHERE workspace = ? AND row_version = ? AND mac_version = ?",
                (mac_version, mac, found["workspace"], found["row_version"], found["mac_version"]),
            )
            written += cursor.rowcount
    return written
