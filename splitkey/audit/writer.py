"""One dedicated thread that runs every write of an audit log, in order.

Callers wait on a future for at most `timeout_s`. So a write that hangs (a
stuck disk, a blocked NFS mount) blocks only the writer thread, and each caller
gets AuditUnavailableError after its own timeout. Once the thread has been
stuck on one job for longer than `timeout_s`, new callers fail at once instead
of queueing behind it.

A job whose caller gave up while it was running is abandoned: it still runs to
its end, which may be a commit, and the writer then reports that end to the
job's `on_abandoned_end` callback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from splitkey.errors import AuditUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Jobs waiting for the writer at most; more callers fail at once.
DEFAULT_MAX_PENDING = 10_000

# Called on the writer thread with the result of an abandoned job, or None and its exception.
AbandonedEndCallback = Callable[[object, BaseException | None], None]


class AbandonedJobError(AuditUnavailableError):
    """The caller stopped waiting for a job that had already started, so the job may still commit.

    The writer reports the job's end to the `on_abandoned_end` callback given to `submit`.
    """


@dataclass
class _Job:
    run: Callable[[], object]
    future: Future
    on_abandoned_end: AbandonedEndCallback | None = None
    # Set by the caller under WriterThread._end_lock, and read there by the writer.
    abandoned: bool = False


class WriterThread:
    """A single thread that runs submitted jobs, and housekeeping between them.

    `housekeeping()` runs before and after every job and whenever the queue
    stays empty for `idle_wait()` seconds; its exceptions are logged, not raised.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float,
        housekeeping: Callable[[], None],
        idle_wait: Callable[[], float],
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._timeout_s = timeout_s
        self._housekeeping = housekeeping
        self._idle_wait = idle_wait
        self._queue: queue.Queue[_Job | None] = queue.Queue(max_pending)
        # Orders a caller's abandoning of a running job against the writer finishing it.
        self._end_lock = threading.Lock()
        self._busy_since: float | None = None
        self._stopping = False
        self._last_housekeeping_log = float("-inf")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, job: Callable[[], T], what: str, *, on_abandoned_end: AbandonedEndCallback | None = None
    ) -> T:
        """Run `job` on the writer thread and return its result.

        Raises AuditUnavailableError when the writer is stopped, stuck, has too
        many jobs waiting, or does not finish `job` within `timeout_s`. A job
        that has not started when its caller gives up is never run. A job that
        had already started is abandoned: the caller gets AbandonedJobError, the
        job runs to its end, and the writer thread then calls
        `on_abandoned_end(result, None)`, or `on_abandoned_end(None, error)` when
        the job raised. A job that ends between the timeout and the caller's
        check returns its own result or raises its own exception.
        """
        if self._stopping:
            raise AuditUnavailableError(f"audit {what} failed: the audit log is closed")
        busy_since = self._busy_since
        if busy_since is not None and time.monotonic() - busy_since > self._timeout_s:
            raise AuditUnavailableError(
                f"audit {what} failed: the audit writer has been stuck for more than "
                f"{self._timeout_s} s; check the disk that stores the audit log"
            )
        item = _Job(job, Future(), on_abandoned_end)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise AuditUnavailableError(
                f"audit {what} failed: {self._queue.maxsize} audit writes are already waiting"
            ) from None
        try:
            return item.future.result(timeout=self._timeout_s)
        except TimeoutError:
            pass
        message = f"audit {what} timed out after {self._timeout_s} s; check the disk that stores the audit log"
        if item.future.cancel():
            raise AuditUnavailableError(message)
        with self._end_lock:
            if not item.future.done():
                item.abandoned = True
                raise AbandonedJobError(message)
        return item.future.result()

    def stop(self, final_job: Callable[[], object], timeout_s: float) -> None:
        """Run `final_job` after every queued job, then end the thread.

        Raises AuditUnavailableError when the final job fails or does not end
        within `timeout_s`. The thread is a daemon, so a stuck writer does not
        keep the process alive.
        """
        future: Future = Future()

        def final() -> object:
            self._stopping = True
            return final_job()

        try:
            self._queue.put(_Job(final, future), timeout=timeout_s)
            future.result(timeout=timeout_s)
        except (queue.Full, TimeoutError):
            self._stopping = True
            raise AuditUnavailableError(
                f"closing the audit log timed out after {timeout_s} s; the last entries may be unsigned"
            ) from None
        finally:
            self._stopping = True
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stopping:
            try:
                item = self._queue.get(timeout=self._idle_wait())
            except queue.Empty:
                item = None
            self._busy_since = time.monotonic()
            try:
                self._run_housekeeping()
                if item is not None:
                    self._run_job(item)
                    self._run_housekeeping()
            finally:
                self._busy_since = None
        self._fail_waiting_jobs()

    def _run_job(self, item: _Job) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        result: object = None
        failure: BaseException | None = None
        try:
            result = item.run()
        except BaseException as error:  # noqa: BLE001 - the caller re-raises it
            failure = error
        with self._end_lock:
            abandoned = item.abandoned
            if failure is None:
                item.future.set_result(result)
            else:
                item.future.set_exception(failure)
        if abandoned and item.on_abandoned_end is not None:
            try:
                item.on_abandoned_end(result, failure)
            except Exception:  # noqa: BLE001 - logged; the writer must keep running
                logger.exception("handling the end of an abandoned audit write failed")

    def _run_housekeeping(self) -> None:
        if self._stopping:
            return
        try:
            self._housekeeping()
        except Exception as error:  # noqa: BLE001 - logged; the next run retries
            now = time.monotonic()
            # At most one line a minute while the disk stays broken.
            if now - self._last_housekeeping_log >= 60.0:
                self._last_housekeeping_log = now
                logger.error("audit housekeeping failed, will retry: %s", error)

    def _fail_waiting_jobs(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item.future.set_running_or_notify_cancel():
                item.future.set_exception(AuditUnavailableError("audit write failed: the audit log is closed"))
