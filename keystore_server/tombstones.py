"""Deliver queued tombstones to the secret server, from the keystore's outbox, until confirmed.

The outbox row is written in the transaction that replaces or removes a
record, so the tombstone survives a crash or an unreachable secret server and
is delivered when the secret server is reachable again. Delivery is idempotent.
"""

from __future__ import annotations

import logging
import threading
import uuid

import grpc

from keystore_server.store import KeystoreStore
from splitkey.v1 import secret_pb2

_logger = logging.getLogger(__name__)
# Seconds between delivery rounds while the outbox is not empty or the secret server is down.
RETRY_INTERVAL_S = 2.0


class TombstoneSender:
    """Background delivery of the outbox; `channel` is the keystore's shared ServerChannel to the secret server."""

    def __init__(self, channel, store: KeystoreStore):
        self._channel = channel
        self._store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tombstones", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """Ask for a delivery round now, after a replace or remove committed."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def deliver_pending(self) -> int:
        """Send every queued tombstone once; return how many are still queued."""
        pending = self._store.pending_tombstones()
        for item in pending:
            try:
                self._channel.stub.secret.Tombstone(
                    secret_pb2.TombstoneRequest(
                        request_id=uuid.uuid4().hex,
                        record_id=item["record_id"],
                        workspace=item["workspace"],
                        reason=item["reason"],
                    ),
                    timeout=5,
                )
            except grpc.RpcError as error:
                _logger.warning(
                    "tombstone for record %s not delivered to the secret server (%s: %s); will retry",
                    item["record_id"], error.code().name, error.details(),
                )
                return len(pending)
            self._store.tombstone_delivered(item["record_id"])
            _logger.info("secret server confirmed tombstone of record %s (%s)", item["record_id"], item["reason"])
        return len(self._store.pending_tombstones())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                remaining = self.deliver_pending()
                self._store.flush_last_used()
            except Exception:  # noqa: BLE001 - a background loop must survive and report
                _logger.exception("tombstone delivery round failed")
                remaining = 1
            self._wake.wait(RETRY_INTERVAL_S if remaining else 10.0)
            self._wake.clear()
