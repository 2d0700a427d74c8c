"""Workspace API modes, their MAC, and how FetchKey picks a record from them.

A workspace is in platform mode (the default: the platform's own keys, kept
under the reserved workspace "platform") or in byok mode (its own keys). In
byok mode a missing provider key falls back to the workspace's OpenRouter
key, which covers every provider, and never to a platform key.
"""

from __future__ import annotations

import logging

from keystore_server.rows import RecordRow, RowMac
from keystore_server.store import KeystoreStore
from splitkey.context import PLATFORM_WORKSPACE
from splitkey.errors import IntegrityError, NotFoundError, PreconditionError
from splitkey.secret import constant_time_equal
from splitkey.v1 import keystore_pb2

_logger = logging.getLogger(__name__)

PLATFORM = "platform"
BYOK = "byok"
MODE_NAMES = {keystore_pb2.API_MODE_PLATFORM: PLATFORM, keystore_pb2.API_MODE_BYOK: BYOK}
MODE_VALUES = {name: value for value, name in MODE_NAMES.items()}


def _mode_fields(workspace: str, mode: str, row_version: int) -> tuple[bytes, ...]:
    return (b"workspace-mode", workspace.encode(), mode.encode(), str(row_version).encode())


class ModeBook:
    """Reads and writes workspace modes, each row under an HMAC derived from KEK-A."""

    def __init__(self, store: KeystoreStore, macs: RowMac, keyring):
        self._store = store
        self._macs = macs
        self._keyring = keyring

    def sign(self, workspace: str, mode: str, row_version: int) -> tuple[int, bytes]:
        version = self._keyring.active_version
        return version, self._macs.tag(version, "access-mac", _mode_fields(workspace, mode, row_version))

    def mode_of(self, workspace: str) -> str:
        """Return the verified mode of a workspace; platform when it never set one."""
        found = self._store.workspace_mode(workspace)
        if found is None:
            if self._store.has_records(workspace):
                # PutKey writes a mode row with a workspace's first key, so keys
                # without one mean the row was deleted behind the keystore's back.
                # NOTE: an older, validly signed mode row put back is not detected.
                _logger.error("workspace %s has keys but no mode row; refusing to guess its mode", workspace)
                raise IntegrityError()
            return PLATFORM
        expected = self._macs.tag(
            found["mac_version"], "access-mac", _mode_fields(workspace, found["mode"], found["row_version"])
        )
        if not constant_time_equal(expected, bytes(found["mac"])):
            _logger.error("workspace %s: mode row failed its MAC check; refusing to use it", workspace)
            raise IntegrityError()
        return found["mode"]

    def resolve(self, workspace: str, provider: str) -> tuple[RecordRow, int]:
        """Pick the record a worker gets for (workspace, provider); return it with its Resolution value."""
        if workspace == PLATFORM_WORKSPACE:
            return self._platform(provider, workspace), keystore_pb2.RESOLUTION_PLATFORM
        if not self._store.has_workspace(workspace):
            raise NotFoundError(
                f"workspace '{workspace}' is unknown; the settings backend creates it by setting its mode or adding a key"
            )
        if self.mode_of(workspace) == PLATFORM:
            return self._platform(provider, workspace), keystore_pb2.RESOLUTION_PLATFORM
        row = self._store.active_record(workspace, provider)
        if row is not None:
            return row, keystore_pb2.RESOLUTION_BYOK
        row = self._store.active_record(workspace, "openrouter")
        if row is not None:
            return row, keystore_pb2.RESOLUTION_OPENROUTER_FALLBACK
        raise PreconditionError(
            f"workspace '{workspace}' uses its own keys (byok) but has no {provider} key and no openrouter key; "
            f"add a {provider} key, or an openrouter key (it covers every provider), or switch the workspace "
            "to platform mode"
        )

    def _platform(self, provider: str, workspace: str) -> RecordRow:
        row = self._store.active_record(PLATFORM_WORKSPACE, provider)
        if row is None:
            hint = (
                "" if workspace == PLATFORM_WORKSPACE
                else f"; or, for the workspace's own keys, run 'splitkey workspace mode {workspace} byok'"
            )
            raise PreconditionError(
                f"workspace '{workspace}' uses the platform's keys and the platform has no {provider} key; "
                f"the security team adds one to the '{PLATFORM_WORKSPACE}' workspace{hint}"
            )
        return row
