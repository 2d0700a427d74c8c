"""One dedicated thread that runs every write of an audit log, in order.

Callers wait on a future for at most `timeout_s`. So a write that hangs (a
stuck disk, a blocked NFS mount) blocks only the writer thread, and each caller
gets AuditUnavailableError after its own timeout. Once the thread has been
stuck on one job for longer than `timeout_s`, new callers fail at once instead
of queueing behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from splitkey.errors import AuditUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Jobs waiting for the writer at most; more callers fail at once.
DEFAULT_MAX_PENDING = 10_000


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
        self._queue: queue.Queue[tuple[Callable[[], object], Future] | None] = queue.Queue(max_pending)
        self._busy_since: float | None = None
        self._stopping = False
        self._last_housekeeping_log = float("-inf")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T], what: str) -> T:
        """Run `job` on the writer thread and return its result.

        Raises AuditUnavailableError when the writer is stopped, stuck, has too
        many jobs waiting, or does not finish `job` within `timeout_s`. A job
        that has not started when its caller gives up is never run. A job that
        had already started may still finish after the caller got the error.
        """
        if self._stopping:
            raise AuditUnavailableError(f"audit {what} failed: the audit log is closed")
        busy_since = self._busy_since
        if busy_since is not None and time.monotonic() - busy_since > self._timeout_s:
            raise AuditUnavailableError(
                f"audit {what} failed: the audit writer has been stuck for more than "
                f"{self._timeout_s} s; check the disk that holds the audit log"
            )
        future: Future = Future()
        try:
            self._queue.put_nowait((job, future))
        except queue.Full:
            raise AuditUnavailableError(
                f"audit {what} failed: {self._queue.maxsize} audit writes are already waiting"
            ) from None
        try:
            return future.result(timeout=self._timeout_s)
        except TimeoutError:
            future.cancel()
            raise AuditUnavailableError(
                f"audit {what} timed out after {self._timeout_s} s; check the disk that holds the audit log"
            ) from None

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
            self._queue.put((final, future), timeout=timeout_s)
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
                    self._run_job(*item)
                    self._run_housekeeping()
            finally:
                self._busy_since = None
        self._fail_waiting_jobs()

    def _run_job(self, job: Callable[[], object], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = job()
        except BaseException as error:  # noqa: BLE001 - the caller re-raises it
            future.set_exception(error)
        else:
            future.set_result(result)

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
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(AuditUnavailableError("audit write failed: the audit log is closed"))
