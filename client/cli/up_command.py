"""`splitkey up`: the whole flow on one machine, for a first look.

Creates a fresh development deployment, starts both servers on loopback,
adds a sample key for a demo workspace, and runs a worker that decrypts the
key once per simulated provider call until Ctrl-C (or --calls).
"""

from __future__ import annotations

import logging
import secrets
import string
import sys
import time
from pathlib import Path

from client.cli.server_process import ServerProcess

_MARKER = ".splitkey-up"
_logger = logging.getLogger(__name__)


def _sample_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk-proj-DEMO-" + "".join(secrets.choice(alphabet) for _ in range(40))


def _prepare(data_dir: Path) -> None:
    from splitkey.errors import ConfigError
    from splitkey.pki.deployment import init_deployment

    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / _MARKER).exists():
        raise ConfigError(
            f"{data_dir} is not empty and was not made by 'splitkey up'; choose another --data-dir"
        )
    init_deployment(data_dir, force=True)
    (data_dir / _MARKER).write_text("made by 'splitkey up'; the next run replaces this folder's deployment\n")


def run_up(args) -> int:
    from client import KeyClient

    data_dir = Path(args.data_dir).absolute()
    print(f"splitkey up: creating a development deployment in {data_dir}")
    _prepare(data_dir)
    servers = [
        ServerProcess("secret", data_dir / "secret.toml", data_dir, stderr_name="secret.stderr"),
        ServerProcess("keystore", data_dir / "keystore.toml", data_dir, stderr_name="keystore.stderr"),
    ]
    calls = 0
    try:
        for server in servers:
            server.start()
            print(f"  {server.kind:<9} server  pid {server.pid:<7} 127.0.0.1:{server.port}  log {server.stderr_path.name}")
        with KeyClient.from_config(data_dir / "client-app.toml") as app:
            app.set_mode(args.workspace, "byok")
            added = app.add_key(args.workspace, "openai", _sample_key())
        print(f"  added sample openai key {added.masked_key} to workspace '{args.workspace}' as record {added.record_id}")
        print("  worker: one decryption per simulated provider call; Ctrl-C stops\n")
        print(f"  {'call':>6}  {'provider':<8}  {'key':<12}  {'decrypt ms':>10}")
        with KeyClient.from_config(data_dir / "client-worker.toml") as worker:
            while args.calls == 0 or calls < args.calls:
                started = time.perf_counter()
                with worker.use_key(args.workspace, "openai/gpt-4o-mini") as api_key:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    masked = api_key.masked
                calls += 1
                print(f"  {calls:>6}  {'openai':<8}  {masked:<12}  {elapsed_ms:>10.2f}", flush=True)
                time.sleep(args.interval)
    except KeyboardInterrupt:
        print()
    finally:
        for server in reversed(servers):
            server.stop()
    print(f"splitkey up: {calls} decryptions; servers stopped. Logs are in {data_dir}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run both servers and a demo worker on this machine",
        description="Create a fresh development deployment, start both servers on 127.0.0.1, "
        "add a sample key and decrypt it once per simulated provider call.",
    )
    parser.add_argument("--data-dir", default=".splitkey-dev", help="folder of the deployment (default: .splitkey-dev)")
    parser.add_argument("--workspace", default="demo", help="workspace of the sample key (default: demo)")
    parser.add_argument("--calls", type=int, default=0, help="stop after this many calls (default: 0, run until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between simulated calls (default: 1.0)")
    parser.set_defaults(func=run_up)
