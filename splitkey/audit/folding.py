"""Folding of repeated denials, so a flood of rejected requests cannot fill the disk.

The first denial for an (actor, action, reason) key is written at once and
opens a window. Further denials with that key inside the window are only
counted. The count is written as one entry, carrying the fields of the first
folded denial, when the window closes or when the log checkpoints or closes.
So each key costs at most two rows per window, plus one per checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from splitkey.audit.record import MAX_COUNT, AuditRecord

FoldKey = tuple[str, str, str]

# Open windows kept in memory at most. When more identities are being denied
# at once, the oldest window is closed early and its count written.
MAX_OPEN_WINDOWS = 4096


@dataclass
class _Window:
    opened_at_s: float
    first_seq: int
    folded: AuditRecord | None = None
    folded_count: int = 0


class DenialFolder:
    """Windows of folded denials. Used only by the log's writer thread."""

    def __init__(self, window_s: float, max_open: int = MAX_OPEN_WINDOWS) -> None:
        self._window_s = window_s
        self._max_open = max_open
        self._windows: OrderedDict[FoldKey, _Window] = OrderedDict()
        # Folded counts whose window closed but that are not written yet.
        self._ready: list[AuditRecord] = []

    @staticmethod
    def key_of(record: AuditRecord) -> FoldKey:
        """Return the key under which denials are folded."""
        return (record.actor, record.action, record.reason)

    def fold(self, record: AuditRecord, now_s: float) -> int | None:
        """Count a denial into its open window and return that window's first seq.

        Return None when no window is open for the key (or it has expired); the
        caller then writes the denial and calls `open_window`.
        """
        window = self._windows.get(self.key_of(record))
        if window is None or now_s >= window.opened_at_s + self._window_s:
            return None
        if window.folded is None:
            window.folded = record
        window.folded_count = min(window.folded_count + record.count, MAX_COUNT)
        return window.first_seq

    def open_window(self, record: AuditRecord, now_s: float, seq: int) -> None:
        """Start a window for the key of a denial just written as entry `seq`."""
        key = self.key_of(record)
        old = self._windows.pop(key, None)
        if old is not None:
            self._keep_folded(old)
        while len(self._windows) >= self._max_open:
            _, oldest = self._windows.popitem(last=False)
            self._keep_folded(oldest)
        self._windows[key] = _Window(opened_at_s=now_s, first_seq=seq)

    def take_due(self, now_s: float) -> list[AuditRecord]:
        """Close expired windows and return the folded records to write, oldest first."""
        for key in list(self._windows):
            window = self._windows[key]
            if now_s < window.opened_at_s + self._window_s:
                continue
            del self._windows[key]
            self._keep_folded(window)
        return self._take_ready()

    def take_all(self) -> list[AuditRecord]:
        """Return every folded count now, for a checkpoint or close; windows stay open."""
        for window in self._windows.values():
            self._keep_folded(window)
            window.folded = None
            window.folded_count = 0
        return self._take_ready()

    def put_back(self, records: list[AuditRecord]) -> None:
        """Keep records whose write failed, to be returned by the next take."""
        self._ready[:0] = records

    def next_close_s(self) -> float | None:
        """Return the clock time at which the earliest open window closes."""
        if not self._windows:
            return None
        return min(w.opened_at_s for w in self._windows.values()) + self._window_s

    def _keep_folded(self, window: _Window) -> None:
        if window.folded is not None and window.folded_count > 0:
            self._ready.append(replace(window.folded, count=window.folded_count))

    def _take_ready(self) -> list[AuditRecord]:
        ready, self._ready = self._ready, []
        return ready
