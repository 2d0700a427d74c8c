"""Run a real splitkey server whose audit writes fail or hang on request.

    python -m tests.audit_fault_server keystore|secret serve --config FILE

The environment variable SPLITKEY_TEST_AUDIT_FAULT names a control file. Each
audit write reads it first: "enospc" raises OSError(ENOSPC) as a full disk
would, "hang" blocks the write until the file contains something else, and
anything else (or no file) writes normally. The seam is `AuditLog._write_rows`,
the one place a write reaches the disk, so everything above it runs as in
production. The fault exists only in this test launcher.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

from unittest import mock

from client.cli import server_process
from client.cli.server_process import ServerProcess
from splitkey.audit.log import AuditLog

CONTROL_ENV = "SPLITKEY_TEST_AUDIT_FAULT"
# A hanging write gives up after this many seconds, so a failed test cannot leave a stuck server.
MAX_HANG_S = 60.0


def _fault() -> str:
    try:
        return Path(os.environ[CONTROL_ENV]).read_text().strip()
    except (KeyError, FileNotFoundError):
        return ""


def _install() -> None:
    write_rows = AuditLog._write_rows

    def faulty_write_rows(self, log_file, entries, heads):
        fault = _fault()
        if fault == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        deadline = time.monotonic() + MAX_HANG_S
        while fault == "hang" and time.monotonic() < deadline:
            time.sleep(0.05)
            fault = _fault()
        write_rows(self, log_file, entries, heads)

    AuditLog._write_rows = faulty_write_rows


class FaultServerProcess(ServerProcess):
    """A ServerProcess started through this launcher, with its fault control file."""

    def __init__(self, kind: str, config: Path, log_dir: Path, control: Path):
        super().__init__(kind, config, log_dir)
        self.control = control

    def set_fault(self, fault: str) -> None:
        self.control.write_text(fault)

    def start(self, timeout_s: float = 30.0, env: dict | None = None) -> "FaultServerProcess":
        # ServerProcess runs `<sys.executable> -m client.cli.main ARGS`. A wrapper script in
        # its place drops `-m client.cli.main` and runs this launcher with the same ARGS.
        wrapper = self.stderr_path.with_suffix(".python")
        wrapper.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" -m tests.audit_fault_server "$@"\n')
        wrapper.chmod(0o755)
        with mock.patch.object(server_process.sys, "executable", str(wrapper)):
            super().start(timeout_s, env={CONTROL_ENV: str(self.control), **(env or {})})
        return self


if __name__ == "__main__":
    _install()
    from client.cli.main import main

    sys.exit(main(sys.argv[1:]))
