"""Revocation and deny rules stored in a server's SQLite database, authenticated by a KEK-derived MAC.

Each rule disables (or re-enables) one subject: a record id, a workspace or a
worker identity (SPIFFE URI). Both servers keep their own copy and check it
on every request, so a write to one database alone cannot lift a rule: the
other server still refuses.

Within one database, a head row contains a generation counter and an
HMAC-SHA256 over the generation and every rule, under a key derived from the
server's KEK (KEK-A on the keystore, KEK-B on the secret server). The tag is
truncated to 128 bits and stored as hex text, so the secret server's
database holds no BLOB and no 32-byte value at all. An edited,
added or deleted rule therefore fails the check, and every request is then
refused with IntegrityError until an administrator writes a rule again
through the RPC. NOTE: deleting the head row together with every rule looks
like a database that never had rules; the other server's copy is the defence
against that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitkey.context import encode_fields, validate_record_id, validate_workspace
from splitkey.errors import IntegrityError, InvalidInputError, PermissionDeniedError
from splitkey.secret import constant_time_equal
from splitkey.sqlite import Database

_logger = logging.getLogger(__name__)

SUBJECT_KINDS = ("record", "workspace", "identity")
MAX_REASON_CHARS = 200
_TAG_BYTES = 16
_IDENTITY = re.compile(r"spiffe://[a-z0-9.-]{1,253}/worker/[a-z0-9][a-z0-9._-]{0,63}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_rules (
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject)
);
-- One row: a generation counter and the MAC over it and every rule.
CREATE TABLE IF NOT EXISTS access_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    mac_version INTEGER NOT NULL,
    -- Hex of the first 16 bytes of the HMAC-SHA256.
    mac TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Rule:
    subject_kind: str
    subject: str
    disabled: bool
    reason: str
    actor: str
    updated_at_ms: int


def validate_subject(subject_kind: str, subject: str) -> tuple[str, str]:
    """Check a rule's subject; raise InvalidInputError naming the field and the expected form."""
    if subject_kind == "record":
        validate_record_id(subject, "subject (record id)")
    elif subject_kind == "workspace":
        validate_workspace(subject, "subject (workspace)")
    elif subject_kind == "identity":
        if not _IDENTITY.fullmatch(subject):
            raise InvalidInputError(
                "subject (identity) must be a worker's SPIFFE URI, spiffe://<trust-domain>/worker/<name>"
            )
    else:
        raise InvalidInputError(f"subject_kind must be one of {', '.join(SUBJECT_KINDS)}, got {subject_kind!r}")
    return subject_kind, subject


def validate_reason(reason: str, disabled: bool) -> str:
    if disabled and not reason.strip():
        raise InvalidInputError("reason is missing; say why the subject is disabled (it is recorded)")
    if len(reason) > MAX_REASON_CHARS or any(ord(char) < 32 for char in reason):
        raise InvalidInputError(f"reason must be at most {MAX_REASON_CHARS} printable characters")
    return reason


class AccessRules:
    """The rule table of one server. `keyring` is the server's KEK keyring (Keyring or LiveKeyring)."""

    def __init__(self, db: Database, keyring, deployment: str, label: str):
        self._db = db
        self._keyring = keyring
        self._deployment = deployment
        # "keystore" or "secret": part of the MAC key's derivation, so the two servers' keys differ.
        self._label = label
        db.connection().executescript(SCHEMA)

    def _key(self, version: int) -> bytes:
        info = encode_fields(
            (b"splitkey", b"access-rules", self._label.encode(), self._deployment.encode(), version.to_bytes(4, "big"))
        )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._keyring.key(version))

    def _mac(self, version: int, generation: int, rules: list[Rule]) -> str:
        fields: list[bytes] = [b"splitkey-access-v1", str(generation).encode()]
        for rule in sorted(rules, key=lambda item: (item.subject_kind, item.subject)):
            fields += [
                rule.subject_kind.encode(),
                rule.subject.encode(),
                b"1" if rule.disabled else b"0",
                rule.reason.encode("utf-8"),
                rule.actor.encode(),
                str(rule.updated_at_ms).encode(),
            ]
        return hmac.new(self._key(version), encode_fields(fields), hashlib.sha256).digest()[:_TAG_BYTES].hex()

    @staticmethod
    def _read_rules(connection) -> list[Rule]:
        return [
            Rule(
                subject_kind=found["subject_kind"],
                subject=found["subject"],
                disabled=bool(found["disabled"]),
                reason=found["reason"],
                actor=found["actor"],
                updated_at_ms=found["updated_at_ms"],
            )
            for found in connection.execute(
                "SELECT subject_kind, subject, disabled, reason, actor, updated_at_ms FROM access_rules"
            ).fetchall()
        ]

    def _verified(self, connection) -> list[Rule]:
        """Read every rule and check the head MAC; raise IntegrityError on any mismatch."""
        rules = self._read_rules(connection)
        head = connection.execute("SELECT generation, mac_version, mac FROM access_head WHERE id = 1").fetchone()
        if head is None:
            if rules:
                _logger.error("access rules exist without their MAC head row; refusing every request")
                raise IntegrityError()
            return []
        expected = self._mac(head["mac_version"], head["generation"], rules)
        if not constant_time_equal(expected, str(head["mac"])):
            _logger.error("access rules fail their MAC (generation %d); refusing every request", head["generation"])
            raise IntegrityError()
        return rules

    def rules(self) -> list[Rule]:
        with self._db.read() as connection:
            return self._verified(connection)

    def set_rule(self, subject_kind: str, subject: str, *, disabled: bool, reason: str, actor: str) -> Rule:
        """Write one rule and re-sign the head under the active KEK version, in one transaction."""
        validate_subject(subject_kind, subject)
        validate_reason(reason, disabled)
        rule = Rule(subject_kind, subject, disabled, reason, actor, int(time.time() * 1000))
        with self._db.write() as connection:
            self._verified(connection)
            connection.execute(
                "INSERT INTO access_rules (subject_kind, subject, disabled, reason, actor, updated_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject_kind, subject) DO UPDATE SET "
                "disabled = excluded.disabled, reason = excluded.reason, actor = excluded.actor, "
                "updated_at_ms = excluded.updated_at_ms",
                (subject_kind, subject, int(disabled), reason, actor, rule.updated_at_ms),
            )
            self._sign_head(connection)
        _logger.info(
            "access rule %s %s: %s by %s (%s)",
            subject_kind, subject, "disabled" if disabled else "enabled", actor, reason,
        )
        return rule

    def _sign_head(self, connection) -> None:
        head = connection.execute("SELECT generation FROM access_head WHERE id = 1").fetchone()
        generation = (head["generation"] + 1) if head else 1
        version = self._keyring.active_version
        mac = self._mac(version, generation, self._read_rules(connection))
        connection.execute(
            "INSERT INTO access_head (id, generation, mac_version, mac) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, "
            "mac_version = excluded.mac_version, mac = excluded.mac",
            (generation, version, mac),
        )

    def resign(self) -> None:
        """Re-sign the head under the active KEK version, so that an older version can be retired."""
        with self._db.write() as connection:
            rules = self._verified(connection)
            head = connection.execute("SELECT 1 FROM access_head WHERE id = 1").fetchone()
            if head is not None or rules:
                self._sign_head(connection)

    def mac_version(self) -> int | None:
        head = self._db.connection().execute("SELECT mac_version FROM access_head WHERE id = 1").fetchone()
        return head["mac_version"] if head else None

    def check(self, *, record_id: str = "", workspaces: tuple[str, ...] = (), identity: str = "") -> None:
        """Raise PermissionDeniedError when any of the given subjects is disabled."""
        subjects = {("record", record_id), ("identity", identity)}
        subjects.update(("workspace", workspace) for workspace in workspaces)
        for rule in self.rules():
            if rule.disabled and (rule.subject_kind, rule.subject) in subjects:
                raise PermissionDeniedError(
                    f"{rule.subject_kind} {rule.subject} is disabled ({rule.reason}); ask the security team"
                )
