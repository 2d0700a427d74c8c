"""`splitkey secret serve`: load the configuration, unseal KEK-B, serve until a signal."""

from __future__ import annotations

import logging

import grpc

from secret_server.admin_servicer import SecretAdminServicer
from secret_server.deny import SecretDenyRules
from secret_server.policy import ALLOW
from secret_server.retire_approvals import RetireApprovals
from secret_server.servicer import SecretServicer
from secret_server.store import SecretStore
from splitkey.audit.hook import WITNESS_EXCHANGE, AuditHook
from splitkey.audit.server_log import open_server_log
from splitkey.audit.service import AuditLogServicer
from splitkey.config import load_secret_config
from splitkey.hardening import disable_core_dumps
from splitkey.live_keyring import LiveKeyring
from splitkey.keyfiles import load_verify_key
from splitkey.logsetup import configure_logging
from splitkey.rpc.guard import Guard
from splitkey.rpc.server import start_server, wait_for_signal
from splitkey.v1 import admin_pb2_grpc, audit_pb2_grpc, secret_pb2_grpc

_logger = logging.getLogger(__name__)


def serve(config_path: str) -> int:
    config = load_secret_config(config_path)
    configure_logging(config.log_file)
    disable_core_dumps()
    keyring = LiveKeyring(config.kek_b, "kek-b", config.trust_domain)
    store = SecretStore(config.database, keyring, config.trust_domain, config.limits.sqlite_busy_timeout_s)
    audit_log = open_server_log(config.audit, config.audit_log)
    deny = SecretDenyRules(store.db, keyring, config.trust_domain)
    servicer = SecretServicer(
        deployment=config.trust_domain,
        store=store,
        keyring=keyring,
        verify_key=load_verify_key(config.grant_verify_key),
        deny=deny,
    )
    approvals = RetireApprovals(store.db, keyring, config.trust_domain)
    admin = SecretAdminServicer(deployment=config.trust_domain, keyring=keyring, deny=deny, approvals=approvals,
                                store=store)

    def register(server: grpc.Server) -> list[str]:
        secret_pb2_grpc.add_SecretServerServicer_to_server(servicer, server)
        admin_pb2_grpc.add_SecretAdminServicer_to_server(admin, server)
        audit_servicer = AuditLogServicer(audit_log, witness_key=config.audit.peer_public_key)
        audit_pb2_grpc.add_AuditLogServicer_to_server(audit_servicer, server)
        return ["splitkey.v1.SecretServer", "splitkey.v1.SecretAdmin", "splitkey.v1.AuditLog"]

    guard = Guard(config.trust_domain, ALLOW)
    guard.set_audit(AuditHook(audit_log, unlogged=WITNESS_EXCHANGE))
    running = start_server(listen=config.listen, tls=config.tls, limits=config.limits, guard=guard, register=register)
    _logger.info("secret server serving on port %d (KEK-B version %d active)", running.port, keyring.active_version)
    print(f"secret server ready on port {running.port}", flush=True)

    def on_stop() -> None:
        store.db.close()
        # Last, after every RPC has drained: writes folded denials and signs the final head.
        audit_log.close()

    wait_for_signal(running, on_stop=on_stop)
    return 0
