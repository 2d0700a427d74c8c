"""Benchmark KeyClient.decrypt against a bare mTLS gRPC round trip, in one run.

The script creates a fresh development deployment in a temporary folder,
starts the real keystore and secret server as child processes on 127.0.0.1,
puts one workspace in byok mode, adds an OpenAI key to it and then measures:

1. the latency of one KeyClient.decrypt at concurrency 1 (p50, p99),
2. decrypt throughput with 8 and 32 worker threads sharing one KeyClient,
3. the same two numbers for the gRPC health Check (grpc.health.v1) on the
   keystore, over an mTLS channel built from the worker's certificate.

A decrypt makes two RPCs in sequence (FetchKey, then UnwrapShare), so the
target is a decrypt p50 of at most 3 times the bare round trip p50.

The last line of the output is one JSON object with every number.
Run it from the repository root:

    python -m bench.decrypt [--calls N] [--seconds S] [--json-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import signal
import statistics
import string
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from grpc_health.v1 import health_pb2, health_pb2_grpc

from client import KeyClient
from client.channels import ServerChannel
from client.cli.server_process import ServerProcess
from splitkey.config import ClientConfig, load_client_config
from splitkey.errors import SplitkeyError
from splitkey.kek import Argon2Params
from splitkey.pki.deployment import init_deployment
from splitkey.secret import constant_time_equal

WORKSPACE = "bench"
MODEL = "openai/gpt-4o-mini"
HEALTH_SERVICE = "splitkey.v1.Keystore"
TARGET_RATIO_P50 = 3.0
THREAD_COUNTS = (8, 32)
# Argon2 only runs when a server unseals its KEK at start-up, outside every
# measured phase, so cheap parameters shorten the run without changing results.
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class LatencyResult:
    """Per-call latencies of one operation at concurrency 1, in milliseconds."""

    p50_ms: float
    p99_ms: float
    mean_ms: float
    calls: int


@dataclass
class ThroughputResult:
    """Completed calls per second of one operation with `threads` concurrent threads."""

    threads: int
    calls: int
    elapsed_s: float
    failed_threads: int
    first_error: str

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.elapsed_s if self.elapsed_s > 0 else 0.0


class BenchmarkError(RuntimeError):
    """A benchmark step failed, so its numbers would be meaningless."""


def _sample_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk-proj-BENCH-" + "".join(secrets.choice(alphabet) for _ in range(40))


def _summarize(samples_ns: list[int]) -> LatencyResult:
    # 99 cut points: index 49 is the median, index 98 the 99th percentile.
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return LatencyResult(
        p50_ms=cuts[49] / 1e6,
        p99_ms=cuts[98] / 1e6,
        mean_ms=statistics.fmean(samples_ns) / 1e6,
        calls=len(samples_ns),
    )


class HealthProbe:
    """The bare round trip: health Check on the keystore over the worker's mTLS credentials."""

    def __init__(self, config: ClientConfig):
        # ServerChannel builds the channel exactly as KeyClient does (same
        # credentials, same options), so only the RPC work differs.
        self._channel = ServerChannel(
            "keystore", config.keystore, health_pb2_grpc.HealthStub,
            expiry_warning_days=config.cert_expiry_warning_days,
        )
        self._timeout_s = config.rpc_timeout_s
        self._request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)

    def check(self) -> None:
        reply = self._channel.stub.Check(self._request, timeout=self._timeout_s)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise BenchmarkError(f"keystore health status is {reply.status}, expected SERVING")

    def close(self) -> None:
        self._channel.close()


def measure_latency(
    operations: dict[str, Callable[[], None]], calls: int, warmup: int
) -> dict[str, LatencyResult]:
    """Time `calls` sequential calls of each operation after `warmup` untimed ones.

    The operations take turns call by call, so a slow spell of a shared host
    hits all of them alike instead of skewing one.
    """
    for _ in range(warmup):
        for operation in operations.values():
            operation()
    samples: dict[str, list[int]] = {name: [] for name in operations}
    for _ in range(calls):
        for name, operation in operations.items():
            started = time.perf_counter_ns()
            operation()
            samples[name].append(time.perf_counter_ns() - started)
    return {name: _summarize(values) for name, values in samples.items()}


def measure_throughput(operation: Callable[[], None], threads: int, seconds: float) -> ThroughputResult:
    """Run `operation` in a loop on `threads` threads for `seconds` and count completed calls.

    Calls still in flight at the deadline finish and count, and the elapsed
    time runs until the last thread ends. A thread stops at its first error.
    """
    counts = [0] * threads
    errors: list[str] = []
    errors_lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    deadline = 0.0

    def work(index: int) -> None:
        start.wait()
        while not stop.is_set() and time.perf_counter() < deadline:
            try:
                operation()
            except Exception as error:  # noqa: BLE001 - counted and reported, not raised in a thread
                with errors_lock:
                    errors.append(f"{type(error).__name__}: {error}")
                return
            counts[index] += 1

    workers = [
        threading.Thread(target=work, args=(index,), name=f"bench-{index}", daemon=True)
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    try:
        for worker in workers:
            # Poll so that Ctrl-C reaches the main thread during the phase.
            while worker.is_alive():
                worker.join(0.2)
    finally:
        # After Ctrl-C, the threads end after their current call.
        stop.set()
    elapsed = time.perf_counter() - began
    return ThroughputResult(
        threads=threads, calls=sum(counts), elapsed_s=elapsed, failed_threads=len(errors),
        first_error=errors[0] if errors else "",
    )


def _raise_keyboard_interrupt(signum, _frame) -> None:
    # SIGTERM takes the same path as Ctrl-C, so the finally blocks stop the servers.
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    """Run every phase against freshly started servers and return the results as a dict."""
    # The load average before and after shows how busy a shared host was during the run.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="splitkey-bench-decrypt-") as temp:
        root = init_deployment(Path(temp) / "dev", argon2_params=FAST_ARGON2)
        servers = [
            ServerProcess("secret", root / "secret.toml", root),
            ServerProcess("keystore", root / "keystore.toml", root),
        ]
        try:
            for server in servers:
                server.start()
                say(f"started {server.kind} server, pid {server.pid}, port {server.port}")
            results = _measure(args, root, say)
            results["load_1min_before"] = round(load_before, 2)
            results["load_1min_after"] = round(os.getloadavg()[0], 2)
            return results
        finally:
            for server in reversed(servers):
                code = server.stop()
                if server.pid is not None:
                    say(f"stopped {server.kind} server, pid {server.pid}, exit code {code}")


def _measure(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> dict:
    api_key = _sample_key()
    with KeyClient.from_config(root / "client-app.toml") as app:
        # A workspace uses the platform's keys unless it is in byok mode. The
        # benchmark decrypts the workspace's own key.
        app.set_mode(WORKSPACE, "byok")
        added = app.add_key(WORKSPACE, "openai", api_key)
    say(f"added openai key {added.masked_key} to workspace '{WORKSPACE}'")

    worker_config = load_client_config(root / "client-worker.toml")
    with KeyClient(worker_config) as worker:
        probe = HealthProbe(worker_config)
        try:
            decrypted = worker.decrypt(WORKSPACE, MODEL)
            if not constant_time_equal(decrypted.reveal(), api_key):
                raise BenchmarkError("the decrypted key differs from the key that was added")
            del decrypted, api_key

            def decrypt() -> None:
                worker.decrypt(WORKSPACE, MODEL)

            operations = {"decrypt": decrypt, "bare": probe.check}
            say(f"latency: {args.warmup} warm-up and {args.calls} timed calls of each, concurrency 1")
            latency = measure_latency(operations, args.calls, args.warmup)

            throughput: dict[str, list[ThroughputResult]] = {name: [] for name in operations}
            for threads in THREAD_COUNTS:
                for name, operation in operations.items():
                    say(f"throughput: {name} with {threads} threads for {args.seconds:g} s")
                    result = measure_throughput(operation, threads, args.seconds)
                    if result.failed_threads:
                        raise BenchmarkError(
                            f"{result.failed_threads} of {threads} threads failed during {name} throughput; "
                            f"first error: {result.first_error}"
                        )
                    throughput[name].append(result)
        finally:
            probe.close()
    return _results(args, latency, throughput)


def _results(args, latency: dict[str, LatencyResult], throughput: dict[str, list[ThroughputResult]]) -> dict:
    ratio = latency["decrypt"].p50_ms / latency["bare"].p50_ms
    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "calls": args.calls,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
    }
    for name in ("decrypt", "bare"):
        result = latency[name]
        results[f"{name}_p50_ms"] = round(result.p50_ms, 3)
        results[f"{name}_p99_ms"] = round(result.p99_ms, 3)
        results[f"{name}_mean_ms"] = round(result.mean_ms, 3)
        for phase in throughput[name]:
            results[f"{name}_calls_per_s_{phase.threads}"] = round(phase.calls_per_s, 1)
    results["ratio_p50"] = round(ratio, 3)
    results["target_ratio_p50"] = TARGET_RATIO_P50
    results["target_met"] = ratio <= TARGET_RATIO_P50
    return results


def format_table(results: dict) -> str:
    """Render the results as a fixed-width text table."""
    thread_columns = [f"{threads} threads" for threads in THREAD_COUNTS]
    header = f"{'operation':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}" + "".join(
        f" {column + ' /s':>14}" for column in thread_columns
    )
    lines = [header, "-" * len(header)]
    labels = {"decrypt": "KeyClient.decrypt", "bare": "health Check (bare mTLS)"}
    for name, label in labels.items():
        line = (
            f"{label:<28} {results[f'{name}_p50_ms']:>8.3f} {results[f'{name}_p99_ms']:>8.3f}"
            f" {results[f'{name}_mean_ms']:>8.3f}"
        )
        for threads in THREAD_COUNTS:
            line += f" {results[f'{name}_calls_per_s_{threads}']:>14.1f}"
        lines.append(line)
    verdict = "met" if results["target_met"] else "MISSED"
    lines.append("")
    lines.append(
        f"decrypt p50 / bare p50 = {results['ratio_p50']:.2f} "
        f"(target at most {results['target_ratio_p50']:g}): {verdict}"
    )
    lines.append(
        f"1-minute load average: {results['load_1min_before']:.2f} before, {results['load_1min_after']:.2f} after "
        f"({results['cpu_count']} CPUs)"
    )
    return "\n".join(lines)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decrypt",
        description="Measure KeyClient.decrypt and a bare mTLS health Check against freshly started "
        "servers on 127.0.0.1. The last output line is a JSON object with every number.",
    )
    # Percentiles need at least 2 samples.
    parser.add_argument("--calls", type=_int_at_least(2), default=1000,
                        help="timed calls of each operation in the latency phase, at least 2 (default: 1000)")
    parser.add_argument("--warmup", type=_int_at_least(0), default=50,
                        help="untimed calls of each operation before the latency phase (default: 50)")
    parser.add_argument("--seconds", type=_positive_float, default=5.0,
                        help="duration of each throughput phase, in seconds (default: 5)")
    parser.add_argument("--json-only", action="store_true",
                        help="print only the JSON line, no progress or table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def say(message: str) -> None:
        if not args.json_only:
            print(message, file=sys.stderr, flush=True)

    previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        results = run(args, say)
    except KeyboardInterrupt:
        print("interrupted; every server this run started was stopped", file=sys.stderr)
        return 130
    except (BenchmarkError, SplitkeyError) as error:
        print(f"benchmark failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if not args.json_only:
        print(format_table(results))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
