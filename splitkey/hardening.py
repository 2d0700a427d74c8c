"""Process hardening for anything that holds key material: no core dumps, no ptrace by peers."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource

_logger = logging.getLogger(__name__)
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def disable_core_dumps() -> None:
    """Set RLIMIT_CORE to zero and mark the process non-dumpable (Linux).

    Non-dumpable also stops processes of the same user from attaching with
    ptrace or reading /proc/<pid>/mem. Failure to set it is logged, not fatal,
    because some sandboxes forbid prctl.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        _logger.warning("libc not found; could not mark the process non-dumpable")
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        _logger.warning("prctl(PR_SET_DUMPABLE, 0) failed with errno %d", ctypes.get_errno())


def is_dumpable() -> bool:
    """Return True when the kernel would write a core dump of this process or allow ptrace of it."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_CORE)
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return soft != 0
    libc = ctypes.CDLL(libc_name, use_errno=True)
    return bool(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)) or soft != 0
