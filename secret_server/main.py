"""`splitkey secret serve`: load the configuration, unseal KEK-B, serve until a signal."""

from __future__ import annotations

import logging

import grpc

from secret_server.policy import ALLOW
from secret_server.servicer import SecretServicer
from secret_server.store import SecretStore
from splitkey.config import load_secret_config
from splitkey.hardening import disable_core_dumps
from splitkey.kek import load_keyring
from splitkey.keyfiles import load_verify_key
from splitkey.logsetup import configure_logging
from splitkey.rpc.guard import Guard
from splitkey.rpc.server import start_server, wait_for_signal
from splitkey.v1 import secret_pb2_grpc

_logger = logging.getLogger(__name__)


def serve(config_path: str) -> int:
    config = load_secret_config(config_path)
    configure_logging(config.log_file)
    disable_core_dumps()
    keyring = load_keyring(config.kek_b.keyring, config.kek_b.passphrase.read())
    store = SecretStore(config.database, config.limits.sqlite_busy_timeout_s)
    servicer = SecretServicer(
        deployment=config.trust_domain,
        store=store,
        keyring=keyring,
        verify_key=load_verify_key(config.grant_verify_key),
    )

    def register(server: grpc.Server) -> list[str]:
        secret_pb2_grpc.add_SecretServerServicer_to_server(servicer, server)
        return ["splitkey.v1.SecretServer"]

    guard = Guard(config.trust_domain, ALLOW)
    running = start_server(listen=config.listen, tls=config.tls, limits=config.limits, guard=guard, register=register)
    _logger.info("secret server serving on port %d (KEK-B version %d active)", running.port, keyring.active_version)
    print(f"secret server ready on port {running.port}", flush=True)
    wait_for_signal(running, on_stop=store.db.close)
    return 0
