"""The bridge from the RPC guard to a server's audit log.

`AuditHook` turns every `AuditEvent` the guard reports into an `AuditRecord`
and appends it. It raises AuditUnavailableError when the entry cannot be
written in time, and the guard then replaces the reply with UNAVAILABLE.

Allowed calls of LatestHead and WitnessHead by the keystore identity get no
entry of their own, because the witness entries record the exchange. An entry
per call would move the head on every exchange, so two idle servers would keep
witnessing each other's new entries forever. Denied calls are logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

from splitkey.audit.log import AuditLog
from splitkey.audit.record import MAX_LENGTHS, OUTCOMES, AuditRecord
from splitkey.errors import AuditUnavailableError, InvalidInputError
from splitkey.rpc.guard import AUDIT_FIELDS, AuditEvent

logger = logging.getLogger(__name__)

_AUDIT_SERVICE = "/splitkey.v1.AuditLog/"
# (method, role) pairs whose allowed calls are recorded by witness entries instead.
WITNESS_EXCHANGE: frozenset[tuple[str, str]] = frozenset({
    (_AUDIT_SERVICE + "LatestHead", "keystore"),
    (_AUDIT_SERVICE + "WitnessHead", "keystore"),
})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_FIELDS = ("cert_fingerprint", "context_hash")
WITHHELD = "[withheld: the value failed the audit field checks]"


class AuditHook:
    """The guard's audit callback: one entry per call, appended before the reply leaves."""

    def __init__(self, log: AuditLog, *, unlogged: Collection[tuple[str, str]] = ()) -> None:
        self._log = log
        self._unlogged = frozenset(unlogged)

    def __call__(self, event: AuditEvent) -> None:
        if self._is_unlogged(event):
            return
        record = record_from_event(event)
        self._log.append(record)

    def _is_unlogged(self, event: AuditEvent) -> bool:
        if event.outcome != "allowed" or event.identity is None:
            return False
        return (event.method, event.identity.role) in self._unlogged


def record_from_event(event: AuditEvent) -> AuditRecord:
    """Build the audit record of one call.

    Values that break the record's checks (too long, control characters, a
    malformed hash, a string shaped like an API key) are cut or withheld
    rather than dropping the entry. Raises AuditUnavailableError when no valid
    record can be built, so the call fails closed.
    """
    identity = event.identity
    values: dict[str, str] = {
        "actor": identity.uri if identity is not None else f"unidentified peer {event.peer}",
        "cert_fingerprint": identity.fingerprint if identity is not None else "",
        "action": event.method.rsplit("/", 1)[-1],
        "outcome": event.outcome if event.outcome in OUTCOMES else "error",
        "reason": event.reason,
    }
    for name, value in event.details.items():
        if name in AUDIT_FIELDS:
            values[name] = str(value)
    values = {name: _fit(name, value) for name, value in values.items()}
    try:
        return AuditRecord(**values)
    except InvalidInputError:
        pass
    # Find the fields the record rejects one by one, and withhold only those.
    for name in list(values):
        if name in ("actor", "action", "outcome"):
            continue
        try:
            AuditRecord(actor="probe", action="probe", outcome="allowed", **{name: values[name]})
        except InvalidInputError:
            logger.warning("audit field %s of a %s call failed its checks and was withheld", name, values["action"])
            values[name] = "" if name in _HEX_FIELDS else WITHHELD
    try:
        return AuditRecord(**values)
    except InvalidInputError as error:
        logger.error("cannot build an audit record for a %s call: %s", values.get("action"), error)
        raise AuditUnavailableError("the audit entry for this call could not be built; nothing was released") from None


def _fit(name: str, value: str) -> str:
    value = _CONTROL.sub(" ", value)
    if name in _HEX_FIELDS and value and not _HEX64.fullmatch(value):
        return ""
    limit = MAX_LENGTHS[name]
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value
