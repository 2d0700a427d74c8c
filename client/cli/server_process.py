"""Run a splitkey server as a child process and wait until it serves (used by `up`, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """One server process. Its stderr goes to a file; its stdout carries the "ready on port N" line."""

    def __init__(self, kind: str, config: Path, log_dir: Path, stderr_name: str | None = None):
        self.kind = kind
        self.config = Path(config)
        # Tests start many servers per folder, so the default name is unique.
        self.stderr_path = Path(log_dir) / (stderr_name or f"{kind}-{time.monotonic_ns()}.stderr")
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout_s: float = 30.0, env: dict | None = None) -> "ServerProcess":
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "client.cli.main", self.kind, "serve", "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=_REPO,
                env={**os.environ, **(env or {})},
                # Its own process group, so Ctrl-C in a terminal reaches only the parent,
                # which then stops the servers in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if "ready on port" in line:
                self.port = int(line.rsplit(" ", 1)[-1])
                return self
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.kind} server did not start:\n{self.stderr()[-4000:]}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None
