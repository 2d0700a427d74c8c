"""Helpers shared by the audit tests: records, a settable clock, and export editing."""

from __future__ import annotations

import json
from pathlib import Path

import nacl.signing

from splitkey.audit import AuditLog, AuditRecord, export_jsonl
from splitkey.audit.entry import hash_fields
from splitkey.audit.head import sign_head

TRUST_DOMAIN = "example.test"
WORKER = f"spiffe://{TRUST_DOMAIN}/worker/gen-1"
APP = f"spiffe://{TRUST_DOMAIN}/app/settings"
CONTEXT_HASH = "ab" * 32
FINGERPRINT = "cd" * 32


class SettableClock:
    """A clock in Unix seconds that moves only when a test advances it."""

    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def use_record(request_id: str, **overrides: object) -> AuditRecord:
    """Return an allowed FetchKey record for `request_id`."""
    values: dict[str, object] = {
        "actor": WORKER,
        "action": "FetchKey",
        "outcome": "allowed",
        "cert_fingerprint": FINGERPRINT,
        "workspace": "ws-0001",
        "provider": "openai",
        "record_id": "0f" * 16,
        "key_versions": "a1,b1",
        "request_id": request_id,
        "context_hash": CONTEXT_HASH,
    }
    values.update(overrides)
    return AuditRecord(**values)  # type: ignore[arg-type]


def denial(reason: str = "record revoked", actor: str = WORKER) -> AuditRecord:
    """Return a denied FetchKey record."""
    return AuditRecord(actor=actor, action="FetchKey", outcome="denied", reason=reason, workspace="ws-0001")


def open_log(path: Path, server_id: str, key: nacl.signing.SigningKey, **options: object) -> AuditLog:
    return AuditLog(path, server_id=server_id, signing_key=key, **options)  # type: ignore[arg-type]


def export_lines(log: AuditLog, path: Path) -> list[dict]:
    """Export `log` to `path` and return the parsed lines."""
    export_jsonl(log, path)
    return [json.loads(line) for line in path.read_text().splitlines()]


def export_file(log: AuditLog, path: Path) -> Path:
    """Export `log` to `path` and return the path."""
    export_jsonl(log, path)
    return path


def write_lines(lines: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def entry_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["type"] == "entry"]


def find_entry(lines: list[dict], seq: int) -> dict:
    return next(line for line in lines if line["type"] == "entry" and line["seq"] == seq)


def rechain_from(lines: list[dict], seq: int) -> None:
    """Recompute prev_hash and entry_hash from entry `seq` on, as a forger without the key would."""
    entries = entry_lines(lines)
    prev_hash = None
    for line in entries:
        if line["seq"] >= seq:
            if prev_hash is not None:
                line["prev_hash"] = prev_hash
            line["entry_hash"] = hash_fields(line)
        prev_hash = line["entry_hash"]


def resign_checkpoints(lines: list[dict], key: nacl.signing.SigningKey) -> None:
    """Re-sign every checkpoint over the current entry hashes, as the log's own server could."""
    hashes = {line["seq"]: line["entry_hash"] for line in entry_lines(lines)}
    for line in lines:
        if line["type"] == "checkpoint" and line["seq"] in hashes:
            head = sign_head(key, line["server_id"], line["seq"], hashes[line["seq"]], line["time_ms"])
            line.update(head.to_dict())


def build_two_day_logs(tmp_path: Path) -> dict[str, Path]:
    """Two logs over two days: matched uses, one use missing on each side, a reused
    request id, an app identity fetching a key, a denial, and a burst of 12 uses."""
    clock = SettableClock(1_800_000_000.0)
    keystore = open_log(tmp_path / "ks.sqlite3", "keystore-1", nacl.signing.SigningKey.generate(), clock=clock)
    secret = open_log(tmp_path / "ss.sqlite3", "secret-1", nacl.signing.SigningKey.generate(), clock=clock)

    def use(request_id, *, on_keystore=True, on_secret=True, **fields):
        if on_keystore:
            keystore.append(use_record(request_id, **fields))
        if on_secret:
            secret.append(use_record(request_id, action="UnwrapShare", **fields))

    for i in range(3):
        use(f"req-{i}")
        clock.advance(120)
    use("req-no-unwrap", on_secret=False)
    use("req-no-fetch", on_keystore=False, workspace="ws-0002")
    use("req-0", on_secret=False)
    keystore.append(use_record("req-app", actor=APP))
    keystore.append(denial())
    clock.advance(86_400)
    for i in range(12):
        use(f"req-burst-{i}", workspace="ws-0003")
        clock.advance(1)
    keystore.close()
    secret.close()
    return {
        "keystore": export_file(keystore, tmp_path / "ks.jsonl"),
        "secret": export_file(secret, tmp_path / "ss.jsonl"),
    }
