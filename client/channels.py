"""mTLS channels to one server, rebuilt when the certificate files change on disk."""

from __future__ import annotations

import logging
import threading
import time

import grpc

from splitkey.config import Endpoint
from splitkey.tls import client_credentials, file_mtimes

_logger = logging.getLogger(__name__)
# How often (seconds) a call may stat the certificate files to notice a rotation.
_RELOAD_CHECK_INTERVAL_S = 2.0


class ServerChannel:
    """A channel to one server plus the stub built on it."""

    def __init__(self, name: str, endpoint: Endpoint, stub_class, *, expiry_warning_days: float, max_message_bytes: int = 4 * 1024 * 1024):
        self.name = name
        self._endpoint = endpoint
        self._stub_class = stub_class
        self._expiry_warning_days = expiry_warning_days
        self._max_message_bytes = max_message_bytes
        self._lock = threading.Lock()
        self._channel, self._stub = self._build()
        self._mtimes = file_mtimes(endpoint.tls)
        self._checked_at = time.monotonic()

    def _build(self):
        credentials, info = client_credentials(self._endpoint.tls, expiry_warning_days=self._expiry_warning_days)
        channel = grpc.secure_channel(
            self._endpoint.address,
            credentials,
            options=[("grpc.max_receive_message_length", self._max_message_bytes)],
        )
        self.certificate = info
        return channel, self._stub_class(channel)

    @property
    def stub(self):
        now = time.monotonic()
        if now - self._checked_at >= _RELOAD_CHECK_INTERVAL_S:
            with self._lock:
                self._checked_at = now
                mtimes = file_mtimes(self._endpoint.tls)
                if mtimes != self._mtimes:
                    old = self._channel
                    self._channel, self._stub = self._build()
                    self._mtimes = mtimes
                    old.close()
                    _logger.info("reloaded client certificate for %s from %s", self.name, self._endpoint.tls.cert)
        return self._stub

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def close(self) -> None:
        self._channel.close()
