"""Run the real splitkey servers as child processes on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from splitkey.kek import Argon2Params
from splitkey.pki.deployment import init_deployment

# Cheap Argon2 so each test deployment unseals in milliseconds; one test keeps the defaults.
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
REPO = Path(__file__).resolve().parent.parent


class ServerProcess:
    """One server process. Its stderr goes to a file the test can read."""

    def __init__(self, kind: str, config: Path, log_dir: Path):
        self.kind = kind
        self.config = config
        self.stderr_path = log_dir / f"{kind}-{time.monotonic_ns()}.stderr"
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout_s: float = 30.0, env: dict | None = None) -> "ServerProcess":
        stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", self.kind, "serve", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        stderr.close()
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
        raise RuntimeError(f"{self.kind} server did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Deployment:
    """A development deployment in a folder, with both servers running."""

    def __init__(self, root: Path):
        self.root = root
        self.keystore = ServerProcess("keystore", root / "keystore.toml", root)
        self.secret = ServerProcess("secret", root / "secret.toml", root)

    @classmethod
    def create(cls, root: Path, **kwargs) -> "Deployment":
        init_deployment(root, argon2_params=FAST_ARGON2, **kwargs)
        return cls(root)

    def start(self) -> "Deployment":
        self.secret.start()
        self.keystore.start()
        return self

    def stop(self) -> None:
        self.keystore.stop()
        self.secret.stop()

    def client_config(self, role: str) -> Path:
        return self.root / f"client-{role}.toml"

    def client(self, role: str):
        from client import KeyClient

        return KeyClient.from_config(self.client_config(role), harden=False)
