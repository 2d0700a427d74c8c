"""Benchmark KEK rotation: re-wrap throughput per kind and decrypt p99 while idle and during each job.

Usage:  python -m bench.rotate [--rows 100000] [--folder DIR]

Creates a development deployment, writes ROWS replaced-status records straight
into the keystore database (the re-wrap job handles every status), adds a few
active keys through the client, then in one run:

1. measures decrypt latency with no job running (idle),
2. runs a KEK-A re-wrap job without a practical rate limit while the same
   decrypt load runs, and
3. does the same for KEK-B, whose job calls RewrapShares on the secret server.

It prints rows per second for each job and p50/p99 decrypt latency for each
phase. Both servers and the benchmark share one machine, so the numbers
include their competition for CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

from client.admin_client import AdminClient  # noqa: E402
from keystore_server.rows import RecordRow, RowMac  # noqa: E402
from keystore_server.store import KeystoreStore  # noqa: E402
from splitkey import record  # noqa: E402
from splitkey.context import Context  # noqa: E402
from splitkey.kek import load_keyring  # noqa: E402
from tests.servers import Deployment  # noqa: E402

DEPLOYMENT = "splitkey.test"
ACTIVE_KEYS = 20
DECRYPT_THREADS = 2
IDLE_SECONDS = 5.0
# High enough that the job runs as fast as the hosts allow.
UNLIMITED_RATE = 1_000_000
BATCH_SIZE = 256


def _fill(root: Path, rows: int) -> None:
    """Insert `rows` replaced records wrapped under KEK-A v1 and KEK-B v1, in one transaction."""
    kek_a = load_keyring(root / "keystore/kek-a.keyring.json", (root / "keystore/kek-a.passphrase").read_bytes())
    kek_b = load_keyring(root / "secret/kek-b.keyring.json", (root / "secret/kek-b.passphrase").read_bytes())
    store = KeystoreStore(root / "keystore/data/keystore.sqlite3")
    macs = RowMac(kek_a, DEPLOYMENT)
    names = [field for field in RecordRow.__dataclass_fields__]
    insert = f"INSERT INTO records ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    now = int(time.time() * 1000)
    with store.db.write() as connection:
        batch = []
        for index in range(rows):
            context = Context(deployment=DEPLOYMENT, workspace=f"bulk-{index // 100:05d}", provider="openai",
                              record_id=os.urandom(16).hex())
            dek = os.urandom(record.DEK_BYTES)
            ciphertext = record.seal_content(dek, f"sk-proj-BENCHONLY-{index:08d}".encode(), context)
            share_a, share_b = record.split_dek(dek)
            row = macs.sign(RecordRow(
                record_id=context.record_id, workspace=context.workspace, provider="openai", status="replaced",
                ciphertext=ciphertext,
                wrap_a=record.wrap_share(kek_a.key(1), 1, share_a, context, "share-a"),
                wrap_b=record.wrap_share(kek_b.key(1), 1, share_b, context, "share-b"),
                kek_a_version=1, kek_b_version=1, key_hint="sk-p…BENC", created_at_ms=now,
            ))
            batch.append(tuple(getattr(row, name) for name in names))
            if len(batch) == 5000:
                connection.executemany(insert, batch)
                batch.clear()
        connection.executemany(insert, batch)
    store.db.close()


class DecryptLoad:
    """Decrypt threads that record each call's latency in milliseconds."""

    def __init__(self, deployment: Deployment, workspaces: list[str]):
        self._deployment = deployment
        self._workspaces = workspaces
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.latencies_ms: list[float] = []
        self.failures = 0
        self._lock = threading.Lock()

    def _run(self) -> None:
        with self._deployment.client("worker") as worker:
            index = 0
            while not self._stop.is_set():
                name = self._workspaces[index % len(self._workspaces)]
                index += 1
                started = time.perf_counter()
                try:
                    worker.decrypt(name, "openai")
                except Exception:  # noqa: BLE001 - counted and reported
                    with self._lock:
                        self.failures += 1
                    continue
                with self._lock:
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> "DecryptLoad":
        for _ in range(DECRYPT_THREADS):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def summary(self) -> str:
        if not self.latencies_ms:
            return "no decrypts"
        ordered = sorted(self.latencies_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{len(ordered)} decrypts, {self.failures} failures, p50 {statistics.median(ordered):.1f} ms, "
                f"p99 {p99:.1f} ms")


def _rotate(admin: AdminClient, kind: str) -> tuple[float, int, str]:
    started = time.monotonic()
    admin.rotate(kind, batch_size=BATCH_SIZE, max_rows_per_second=UNLIMITED_RATE)
    while True:
        job = admin.status(kind)[0]
        if job.state != "running":
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    return elapsed, job.rows_done, job.state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="records to re-wrap per kind (default 100000)")
    parser.add_argument("--folder", type=Path, default=None, help="deployment folder (default: a new temporary one)")
    args = parser.parse_args(argv)

    root = (args.folder or Path(tempfile.mkdtemp(prefix="splitkey-bench-"))) / "dev"
    deployment = Deployment.create(root)
    started = time.monotonic()
    _fill(root, args.rows)
    print(f"wrote {args.rows} records in {time.monotonic() - started:.1f} s", flush=True)
    deployment.start()
    try:
        workspaces = [f"bench-{index:03d}" for index in range(ACTIVE_KEYS)]
        with deployment.client("app") as app:
            for index, name in enumerate(workspaces):
                app.add_key(name, "openai", f"sk-proj-BENCHONLY-active{index:04d}")
        results = []
        with DecryptLoad(deployment, workspaces) as idle:
            time.sleep(IDLE_SECONDS)
        results.append(("idle", "-", idle.summary()))
        with AdminClient.from_config(deployment.client_config("security")) as admin:
            for kind in ("kek-a", "kek-b"):
                with DecryptLoad(deployment, workspaces) as load:
                    elapsed, done, state = _rotate(admin, kind)
                rate = f"{done / elapsed:.0f} rows/s ({done} rows in {elapsed:.1f} s, {state})"
                results.append((f"{kind} re-wrap", rate, load.summary()))
        print()
        print(f"{'phase':14} {'re-wrap throughput':44} decrypt latency")
        for phase, rate, latency in results:
            print(f"{phase:14} {rate:44} {latency}")
    finally:
        deployment.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
