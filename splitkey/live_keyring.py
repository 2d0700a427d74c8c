"""A keyring that follows its file: version changes made by any process take effect in a running server.

Every server instance holds one LiveKeyring. After a version is added,
activated or retired (by this instance's admin RPCs or by another instance
sharing the file), the in-memory keyring is reloaded: at once for changes made
here, and within `check_interval_s` otherwise. A request for a version this
instance has never seen forces a reload first, so a row written by another
instance under a version added there can always be read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from splitkey import kek
from splitkey.config import KekConfig
from splitkey.errors import KeyVersionError

_logger = logging.getLogger(__name__)


class LiveKeyring:
    """The `Keyring` interface (active_version, key, states) over a keyring file that may change."""

    def __init__(self, config: KekConfig, purpose: str, deployment: str, check_interval_s: float = 1.0):
        self._config = config
        self._purpose = purpose
        self._deployment = deployment
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._keyring = self._load()
        self._mtime = self._file_mtime()
        self._checked_at = time.monotonic()

    @property
    def path(self) -> Path:
        return Path(self._config.keyring)

    def _file_mtime(self) -> int:
        try:
            return os.stat(self._config.keyring).st_mtime_ns
        except OSError:
            return 0

    def _load(self) -> kek.Keyring:
        return kek.load_keyring(
            self._config.keyring, self._config.passphrase.read(), purpose=self._purpose, deployment=self._deployment
        )

    def reload(self) -> None:
        """Read the keyring file again and swap the in-memory keyring."""
        with self._lock:
            keyring = self._load()
            self._keyring = keyring
            self._mtime = self._file_mtime()
            self._checked_at = time.monotonic()
        _logger.info("reloaded %s keyring: versions %s, active %d", self._purpose, keyring.states(), keyring.active_version)

    def _refresh_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._check_interval_s:
            return
        self._checked_at = now
        if self._file_mtime() != self._mtime:
            self.reload()

    @property
    def active_version(self) -> int:
        self._refresh_if_changed()
        return self._keyring.active_version

    def key(self, version: int) -> bytes:
        """Return the KEK of `version`, reloading once when the version is unknown here."""
        self._refresh_if_changed()
        keyring = self._keyring
        if version not in keyring.states():
            if self._file_mtime() != self._mtime:
                self.reload()
            keyring = self._keyring
        return keyring.key(version)

    def states(self) -> dict[int, str]:
        self._refresh_if_changed()
        return self._keyring.states()

    # -- version admin: each change is written to the file first, then loaded --

    def add_version(self) -> int:
        version = kek.add_version(self._config.keyring, self._config.passphrase.read())
        self.reload()
        return version

    def activate_version(self, version: int) -> None:
        if self.states().get(version) is None:
            raise KeyVersionError(f"key version {version} does not exist; add it first")
        kek.activate_version(self._config.keyring, self._config.passphrase.read(), version)
        self.reload()

    def retire_version(self, version: int) -> None:
        if self.states().get(version) is None:
            raise KeyVersionError(f"key version {version} does not exist")
        kek.retire_version(self._config.keyring, self._config.passphrase.read(), version)
        self.reload()

    def __repr__(self) -> str:
        return f"<LiveKeyring {self._purpose} {self._config.keyring} redacted>"

    def __reduce__(self):
        raise TypeError("LiveKeyring contains a KEK and cannot be pickled")
