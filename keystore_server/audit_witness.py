"""The keystore's side of cross-witnessing: exchange signed audit heads with the secret server.

Only the keystore has a client certificate for the other server
(spiffe://<trust-domain>/keystore/main, issued by the secret CA), so it drives
both directions. Every `interval_s` it fetches the secret server's latest
signed head and appends it to its own log, then signs its own head and pushes
it with WitnessHead. Then neither server can rewrite its history alone: the
other one stores a signed head of it.

A round skips what has not changed: a secret-server head that only adds the
witness entry of our last push is not witnessed again, and an unchanged own
head is not pushed. So two idle servers stop exchanging instead of
witnessing each other's witness entries forever.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from splitkey.audit.log import AuditLog
from splitkey.audit.service import head_from_message, head_to_message
from splitkey.config import KeystoreConfig
from splitkey.errors import SplitkeyError
from splitkey.rpc.status import error_from_rpc
from splitkey.v1 import audit_pb2

logger = logging.getLogger(__name__)

# At most one log line per this many seconds while the exchange keeps failing.
_ERROR_LOG_INTERVAL_S = 60.0


class WitnessExchange:
    """A background thread that exchanges signed heads with the secret server.

    `channel` is the keystore's shared ServerChannel to the secret server.
    """

    def __init__(self, config: KeystoreConfig, log: AuditLog, channel, *, rpc_timeout_s: float = 5.0) -> None:
        assert config.audit is not None
        self._log = log
        self._peer_key = config.audit.peer_public_key
        self._interval_s = config.audit.witness_interval_s
        self._rpc_timeout_s = rpc_timeout_s
        self._channel = channel
        # Highest secret-server seq already covered by a witness on either side.
        self._peer_seq_covered = -1
        self._pushed_seq = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
        self._failures = 0
        self._last_error_log = float("-inf")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread after its current round; the channel belongs to the caller."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._rpc_timeout_s * 2 + 1)

    def exchange_once(self) -> None:
        """Witness the secret server's head if it moved, then push our own if it moved.

        Raises a SplitkeyError when a call or a write fails; IntegrityError
        means the secret server's head conflicts with one witnessed before.
        """
        try:
            peer_head = head_from_message(self._channel.stub.audit.LatestHead(audit_pb2.LatestHeadRequest(), timeout=self._rpc_timeout_s))
        except grpc.RpcError as rpc_error:
            raise error_from_rpc(rpc_error, "secret server") from None
        if peer_head.seq > self._peer_seq_covered:
            seq = self._log.witness(peer_head, self._peer_key)
            logger.debug("witnessed secret-server head seq %d as entry %d", peer_head.seq, seq)
        self._peer_seq_covered = max(self._peer_seq_covered, peer_head.seq)

        own_head = self._log.checkpoint()
        if own_head.seq == self._pushed_seq:
            return
        request = audit_pb2.WitnessHeadRequest(head=head_to_message(own_head))
        try:
            reply = self._channel.stub.audit.WitnessHead(request, timeout=self._rpc_timeout_s)
        except grpc.RpcError as rpc_error:
            raise error_from_rpc(rpc_error, "secret server") from None
        self._pushed_seq = own_head.seq
        self._peer_seq_covered = max(self._peer_seq_covered, reply.witness_seq)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.exchange_once()
            except Exception as error:  # noqa: BLE001 - any error must not end witnessing for good
                self._report(error)
            else:
                if self._failures:
                    logger.info("audit head exchange with the secret server works again after %d failures",
                                self._failures)
                    self._failures = 0

    def _report(self, error: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            # A SplitkeyError is an expected failure; anything else is a bug, so its traceback is logged too.
            logger.error(
                "audit head exchange with the secret server failed (%d in a row), will retry in %.1f s: %s: %s",
                self._failures, self._interval_s, type(error).__name__, error,
                exc_info=not isinstance(error, SplitkeyError),
            )
