"""Start a splitkey gRPC server: mTLS credentials, limits, the guard, health, clean shutdown."""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from splitkey.config import ServerLimits, TlsFiles
from splitkey.errors import ConfigError
from splitkey.rpc.guard import Guard
from splitkey.tls import server_credentials

_logger = logging.getLogger(__name__)


class RunningServer:
    """A started server, its bound port and its health servicer."""

    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer, services: list[str]):
        self.server = server
        self.port = port
        self.health = health_servicer
        self.services = services

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.services]:
            self.health.set(name, status)

    def stop(self, grace_s: float = 5.0) -> None:
        self.set_serving(False)
        self.server.stop(grace_s).wait()


def start_server(
    *,
    listen: str,
    tls: TlsFiles,
    limits: ServerLimits,
    guard: Guard,
    register: Callable[[grpc.Server], list[str]],
) -> RunningServer:
    """Bind `listen` with mTLS and start serving; `register` adds servicers and returns their names."""
    if os.environ.get("GRPC_VERBOSITY", "").upper() in ("ERROR", "NONE"):
        # grpc's C core reports rejected client certificates ("Handshake failed")
        # at INFO on stderr; these levels hide every rejected connection attempt.
        _logger.warning("GRPC_VERBOSITY=%s hides rejected TLS handshakes from the log; unset it", os.environ["GRPC_VERBOSITY"])
    credentials = server_credentials(tls)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="rpc"),
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # grpc enables SO_REUSEPORT by default, which lets a second server
            # silently share a port that is already in use.
            ("grpc.so_reuseport", 0),
        ],
    )
    services = register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_secure_port(listen, credentials)
    except RuntimeError as error:
        raise ConfigError(f"cannot listen on {listen}: {error}") from None
    if port == 0:
        raise ConfigError(f"cannot listen on {listen}: the address is in use or invalid")
    server.start()
    running = RunningServer(server, port, health_servicer, services)
    running.set_serving(True)
    return running


def wait_for_signal(running: RunningServer, on_stop: Callable[[], None] | None = None) -> None:
    """Block until SIGTERM or SIGINT, then drain and stop."""
    stop = threading.Event()

    def request_stop(signum, _frame):
        _logger.info("received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop.wait(1.0):
        pass
    running.stop()
    if on_stop is not None:
        on_stop()
    _logger.info("stopped")
