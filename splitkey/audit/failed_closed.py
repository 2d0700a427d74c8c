"""Late entries for calls whose audit entry could not be written.

When `AuditLog.append` raises AuditUnavailableError (the write failed or
timed out), the call fails closed and, without this module, leaves no entry.
The log keeps such records in memory, and its writer thread appends them once
writes work again: the call's own fields with outcome "error" (a denial stays
"denied") and a reason that states that the entry is late and why. The call
failed either way, so a late entry never stands for a released share.

A write that timed out while it was running may still commit. The log then
keeps no record for it, because the committed entry already names the call.
The record is kept only when that write fails after all.

At most MAX_LATE_RECORDS are kept. Records beyond that are dropped and only
counted, and the count is written as one `failed-closed` entry. Records still
in memory are lost when the process is killed.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from splitkey.audit.record import MAX_COUNT, MAX_LENGTHS, AuditRecord
from splitkey.errors import InvalidInputError

# The log's own action for the count of failed calls whose records were not kept.
FAILED_CLOSED_ACTION = "failed-closed"
# Maximum number of records kept in memory while the log cannot be written.
MAX_LATE_RECORDS = 1000

_LATE_PREFIX = "late entry: the audit write failed, so the call failed closed"


class FailedClosedCalls:
    """Records of calls that failed closed, waiting to be written. Safe to use from any thread."""

    def __init__(self, max_records: int | None = None) -> None:
        self._max_records = MAX_LATE_RECORDS if max_records is None else max_records
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []
        self._dropped = 0

    def note(self, record: AuditRecord, error: Exception) -> None:
        """Keep the late form of `record`, whose append raised `error`."""
        late = late_record(record, error)
        with self._lock:
            if len(self._records) < self._max_records:
                self._records.append(late)
            else:
                self._dropped += 1

    def take_all(self) -> tuple[list[AuditRecord], int]:
        """Remove and return the kept records and the count of calls whose records were dropped."""
        with self._lock:
            records, self._records = self._records, []
            dropped, self._dropped = self._dropped, 0
        return records, dropped

    def put_back(self, records: list[AuditRecord], dropped: int) -> None:
        """Restore records taken by `take_all` whose write failed, ahead of newer ones."""
        with self._lock:
            kept = records + self._records
            self._records = kept[: self._max_records]
            self._dropped += dropped + len(kept) - len(self._records)


def late_record(record: AuditRecord, error: Exception) -> AuditRecord:
    """Return the record to write late for a call whose audit append raised `error`."""
    outcome = "denied" if record.outcome == "denied" else "error"
    detail = f" ({error})"
    if record.reason:
        detail += f"; the call's reason: {record.reason}"
    reason = _LATE_PREFIX + detail
    limit = MAX_LENGTHS["reason"]
    if len(reason) > limit:
        reason = reason[: limit - 1] + "…"
    try:
        return replace(record, outcome=outcome, reason=reason)
    except InvalidInputError:
        # The error text failed the field checks; the fixed text alone passes them.
        return replace(record, outcome=outcome, reason=_LATE_PREFIX)


def dropped_calls_draft(dropped: int) -> dict[str, str | int]:
    """Return the entry draft that counts failed calls whose records were dropped."""
    return {
        "action": FAILED_CLOSED_ACTION,
        "outcome": "error",
        "count": min(dropped, MAX_COUNT),
        "reason": (
            f"{dropped} more calls failed closed while the audit log could not be written; "
            "too many calls failed to keep each one in memory, so these have no entry of their own"
        ),
    }
