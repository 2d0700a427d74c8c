"""Per-workspace rate limit on live key checks (token bucket).

Each live check sends a billed request with the customer's key, and a check
endpoint without a limit is an oracle for guessing keys. The limiter allows a
burst of `capacity` checks per workspace and then `refill_per_s` checks per
second.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from splitkey.errors import ResourceExhaustedError


class CheckRateLimiter:
    """Token buckets keyed by workspace id; thread-safe; the clock is injectable (seconds)."""

    def __init__(
        self,
        capacity: float = 5,
        refill_per_s: float = 5 / 60,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_workspaces: int = 10_000,
    ) -> None:
        if capacity < 1 or refill_per_s <= 0 or max_workspaces < 1:
            raise ValueError("capacity must be >= 1, refill_per_s > 0 and max_workspaces >= 1")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._clock = clock
        self._max_workspaces = max_workspaces
        self._lock = threading.Lock()
        # workspace id -> (tokens, time of last update); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def try_acquire(self, workspace_id: str) -> float:
        """Take one token; return 0.0 on success, else the seconds until a token is available."""
        with self._lock:
            now = self._clock()
            tokens, updated = self._buckets.get(workspace_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.refill_per_s)
            if tokens >= 1.0:
                self._store(workspace_id, tokens - 1.0, now)
                return 0.0
            self._store(workspace_id, tokens, now)
            return (1.0 - tokens) / self.refill_per_s

    def acquire(self, workspace_id: str) -> None:
        """Take one token or raise ResourceExhaustedError saying when to try again."""
        wait_s = self.try_acquire(workspace_id)
        if wait_s > 0:
            raise ResourceExhaustedError(
                f"too many key checks for workspace {workspace_id!r}: try again in "
                f"{math.ceil(wait_s)} s"
            )

    def _store(self, workspace_id: str, tokens: float, now: float) -> None:
        self._buckets[workspace_id] = (tokens, now)
        self._buckets.move_to_end(workspace_id)
        # Forgetting the least recently used bucket resets it to full. That
        # slot was idle the longest, so it has refilled the most anyway.
        while len(self._buckets) > self._max_workspaces:
            self._buckets.popitem(last=False)
