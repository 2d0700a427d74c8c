"""One grant per request id: a request id unwraps under one grant only while that grant is alive."""

from __future__ import annotations

import threading
from collections import OrderedDict
import time

from splitkey.errors import PermissionDeniedError
from splitkey.grant import CLOCK_SKEW_MS, MAX_GRANT_LIFETIME_MS
from splitkey.secret import constant_time_equal


class ReplayGuard:
    """Remembers used request ids and their grants until the grants could no longer be valid.

    Memory is bounded by the unwrap rate times the grant lifetime (about 61 s).
    NOTE: the set lives in memory, so a restart within a minute forgets it. The
    audit log then shows two allowed unwraps under one request id, which
    reconcile counts as a retry when actor and context match.
    """

    def __init__(self, clock=time.time):
        self._clock = clock
        # Insertion order is time order, so expired entries are always at the front.
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, request_id: str, grant_signature: bytes) -> None:
        """Allow the first use of a request id, and retries of it with the very same grant.

        A retry returns share_b sealed to the same reply key again, which only the
        worker that made that key can open, so it releases nothing new. A second
        grant under a used request id is refused.
        """
        now = self._clock()
        horizon = (MAX_GRANT_LIFETIME_MS + 2 * CLOCK_SKEW_MS) / 1000
        with self._lock:
            while self._seen and now - next(iter(self._seen.values()))[0] >= horizon:
                self._seen.popitem(last=False)
            seen = self._seen.get(request_id)
            if seen is not None and now - seen[0] < horizon:
                if not constant_time_equal(seen[1], grant_signature):
                    raise PermissionDeniedError("request_id was already used with another grant; use a new request_id")
                return
            self._seen[request_id] = (now, grant_signature)
