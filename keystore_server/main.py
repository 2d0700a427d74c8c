"""`splitkey keystore serve`: load the configuration, unseal KEK-A, serve until a signal."""

from __future__ import annotations

import logging

import grpc

from keystore_server.access import KeystoreAccess
from keystore_server.admin_servicer import KeystoreAdminServicer
from keystore_server.audit_witness import WitnessExchange
from keystore_server.modes import ModeBook
from keystore_server.policy import ALLOW
from keystore_server.rotation.engine import RewrapEngine
from keystore_server.rotation.retired import KekBVersions
from keystore_server.rotation.secret_link import SecretLink
from keystore_server.secret_channel import open_secret_channel
from keystore_server.rows import RowMac
from keystore_server.servicer import KeystoreServicer
from keystore_server.store import KeystoreStore
from keystore_server.tombstones import TombstoneSender
from splitkey.audit.hook import AuditHook
from splitkey.audit.server_log import open_server_log
from splitkey.audit.service import AuditLogServicer
from splitkey.config import load_keystore_config
from splitkey.hardening import disable_core_dumps
from splitkey.live_keyring import LiveKeyring
from splitkey.keyfiles import load_signing_key
from splitkey.logsetup import configure_logging
from splitkey.rpc.guard import Guard
from splitkey.rpc.server import start_server, wait_for_signal
from splitkey.v1 import admin_pb2_grpc, audit_pb2_grpc, keystore_pb2_grpc

_logger = logging.getLogger(__name__)


def serve(config_path: str) -> int:
    config = load_keystore_config(config_path)
    configure_logging(config.log_file)
    disable_core_dumps()
    keyring = LiveKeyring(config.kek_a, "kek-a", config.trust_domain)
    store = KeystoreStore(config.database, config.limits.sqlite_busy_timeout_s)
    audit_log = open_server_log(config.audit, config.audit_log)
    secret_channel = open_secret_channel(config)
    tombstones = TombstoneSender(secret_channel, store)
    access = KeystoreAccess(store.db, keyring, config.trust_domain)
    link = SecretLink(secret_channel)
    engine = RewrapEngine(
        db=store.db, keyring=keyring, deployment=config.trust_domain, link=link, access=access,
        modes=ModeBook(store, RowMac(keyring, config.trust_domain), keyring),
    )
    kek_b_versions = KekBVersions(store.db, link)
    servicer = KeystoreServicer(
        deployment=config.trust_domain,
        store=store,
        keyring=keyring,
        signing_key=load_signing_key(config.grant_signing_key),
        kek_b_versions=kek_b_versions,
        on_tombstone=tombstones.notify,
        access=access,
    )
    admin = KeystoreAdminServicer(
        deployment=config.trust_domain, db=store.db, keyring=keyring, link=link, access=access, engine=engine,
        kek_b_versions=kek_b_versions,
    )

    def register(server: grpc.Server) -> list[str]:
        keystore_pb2_grpc.add_KeystoreServicer_to_server(servicer, server)
        admin_pb2_grpc.add_KeystoreAdminServicer_to_server(admin, server)
        audit_pb2_grpc.add_AuditLogServicer_to_server(AuditLogServicer(audit_log), server)
        return ["splitkey.v1.Keystore", "splitkey.v1.KeystoreAdmin", "splitkey.v1.AuditLog"]

    guard = Guard(config.trust_domain, ALLOW)
    guard.set_audit(AuditHook(audit_log))
    witness = WitnessExchange(config, audit_log, secret_channel)
    running = start_server(listen=config.listen, tls=config.tls, limits=config.limits, guard=guard, register=register)
    _logger.info(
        "keystore serving on port %d (KEK-A version %d active, database %s)",
        running.port, keyring.active_version, config.database,
    )
    tombstones.start()
    witness.start()
    engine.resume_all()
    admin.retirement.start_resume()
    print(f"keystore ready on port {running.port}", flush=True)

    def on_stop() -> None:
        witness.stop()
        admin.retirement.stop()
        engine.stop()
        tombstones.stop()
        secret_channel.close()
        store.flush_last_used()
        store.db.close()
        # Last, after every RPC has drained: writes folded denials and signs the final head.
        audit_log.close()

    wait_for_signal(running, on_stop=on_stop)
    return 0
