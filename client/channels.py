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
# How long (seconds) a replaced channel stays open, so calls already running on
# it finish: grpc's Channel.close() cancels every active call at once.
RETIRED_CHANNEL_GRACE_S = 30.0


class ServerChannel:
    """A channel to one server plus the stub built on it."""

    def __init__(self, name: str, endpoint: Endpoint, stub_class, *, expiry_warning_days: float, max_message_bytes: int = 4 * 1024 * 1024):
        self.name = name
        self._endpoint = endpoint
        self._stub_class = stub_class
        self._expiry_warning_days = expiry_warning_days
        self._max_message_bytes = max_message_bytes
        self._lock = threading.Lock()
        # Channels replaced by a certificate reload, closed after a grace period.
        self._retired: list[grpc.Channel] = []
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
        if time.monotonic() - self._checked_at >= _RELOAD_CHECK_INTERVAL_S:
            self._reload_if_changed()
        return self._stub

    def _reload_if_changed(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked_at < _RELOAD_CHECK_INTERVAL_S:
                return
            self._checked_at = time.monotonic()
            mtimes = file_mtimes(self._endpoint.tls)
            if mtimes == self._mtimes:
                return
            old = self._channel
            self._channel, self._stub = self._build()
            self._mtimes = mtimes
            self._retired.append(old)
            closer = threading.Timer(RETIRED_CHANNEL_GRACE_S, self._close_retired, args=(old,))
            closer.daemon = True
            closer.start()
            _logger.info("reloaded client certificate for %s from %s", self.name, self._endpoint.tls.cert)

    def _close_retired(self, channel: grpc.Channel) -> None:
        with self._lock:
            if channel in self._retired:
                self._retired.remove(channel)
        channel.close()

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def close(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for channel in [*retired, self._channel]:
            channel.close()
