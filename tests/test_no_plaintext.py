"""No API key, DEK or share at rest or in logs, in any encoding, anywhere in the deployment folder.

One run adds a key for every provider, replaces one, decrypts them all and
provokes a few failures that the servers log. A spy around
`splitkey.record.split_dek` (it calls the real function) captures every DEK
and both shares in the test process. Then every file under the deployment
folder is searched: both servers' data folders with their SQLite WAL files,
the server logs and the captured stderr of both processes.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from splitkey import record
from splitkey.errors import KeyFormatError, NotFoundError
from tests.servers import Deployment

# Key = visible prefix + random part. Only the random part is searched in
# pieces, because every key of a provider shares its prefix.
_KEY_SHAPES = {
    "openai": ("sk-proj-", lambda: secrets.token_hex(24)),
    "anthropic": ("sk-ant-api03-", lambda: secrets.token_urlsafe(40)),
    "google": ("AIza", lambda: secrets.token_urlsafe(30)[:35]),
    "openrouter": ("sk-or-v1-", lambda: secrets.token_hex(32)),
}
# Length of the key pieces searched for. Much shorter pieces of a random key
# part could match unrelated bytes by chance.
_PIECE_CHARS = 10


@dataclass
class Secrets:
    """Everything that must not appear at rest: API keys and the DEKs and shares captured by the spy."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    deks: list[bytes] = field(default_factory=list)
    shares: list[bytes] = field(default_factory=list)


def _new_key(provider: str) -> tuple[str, str]:
    prefix, random_part = _KEY_SHAPES[provider]
    return prefix, random_part()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    deployment = Deployment.create(tmp_path_factory.mktemp("plaintext") / "dev").start()
    captured = Secrets()
    real_split_dek = record.split_dek

    def spy_split_dek(dek, share_a=None):
        share_a, share_b = real_split_dek(dek, share_a)
        captured.deks.append(bytes(dek))
        captured.shares.extend((bytes(share_a), bytes(share_b)))
        return share_a, share_b

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(record, "split_dek", spy_split_dek)
            with deployment.client("app") as app, deployment.client("worker") as worker:
                for workspace in ("plain-one", "plain-two"):
                    for provider in _KEY_SHAPES:
                        prefix, random_part = _new_key(provider)
                        app.add_key(workspace, provider, prefix + random_part)
                        captured.keys.append((prefix, random_part))
                        assert worker.decrypt(workspace, provider).reveal() == prefix + random_part

                # Replacing a key leaves a replaced row in the keystore.
                prefix, random_part = _new_key("openai")
                app.add_key("plain-one", "openai", prefix + random_part)
                captured.keys.append((prefix, random_part))
                assert worker.decrypt("plain-one", "openai/gpt-4o").reveal() == prefix + random_part

                # Failures that the client and the servers report and log.
                prefix, random_part = _new_key("openai")
                with pytest.raises(KeyFormatError):
                    app.add_key("plain-one", "openai", prefix + random_part[:8] + " " + random_part[8:])
                captured.keys.append((prefix, random_part))
                with pytest.raises(NotFoundError):
                    worker.decrypt("plain-missing", "openai")
        assert len(captured.deks) == 9
        assert len(captured.shares) == 18
        yield deployment, captured
    finally:
        deployment.stop()


def _base64_forms(data: bytes) -> list[bytes]:
    """Return base64 text of `data` as it appears on its own or inside a longer encoded blob.

    Inside a longer blob the encoding depends on the offset modulo 3, so the
    middle of the encoding at each of the three offsets is returned, with the
    characters that also depend on the neighbouring bytes cut off.
    """
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data + bytes(3))
        middle = encoded[4:-8]
        forms.append(middle)
        forms.append(middle.replace(b"+", b"-").replace(b"/", b"_"))
    return forms


def _forms(data: bytes) -> list[bytes]:
    """Return the raw bytes, hex in both cases and base64 forms of one secret."""
    return [data, data.hex().encode(), data.hex().upper().encode(), *_base64_forms(data)]


def _needles(captured: Secrets) -> list[tuple[str, bytes]]:
    needles = []
    for index, (prefix, random_part) in enumerate(captured.keys):
        key = (prefix + random_part).encode()
        needles += [(f"API key {index}", form) for form in _forms(key)]
        for start in range(len(random_part) - _PIECE_CHARS + 1):
            needles.append((f"piece of API key {index}", random_part[start:start + _PIECE_CHARS].encode()))
    for index, dek in enumerate(captured.deks):
        needles += [(f"DEK {index}", form) for form in _forms(dek)]
    for index, share in enumerate(captured.shares):
        needles += [(f"share {index}", form) for form in _forms(share)]
    return needles


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _findings(root: Path, captured: Secrets) -> list[str]:
    needles = _needles(captured)
    findings = []
    for path in _files(root):
        content = path.read_bytes()
        for label, needle in needles:
            if needle in content:
                findings.append(f"{label} in {path.relative_to(root)}")
    return findings


def test_no_secret_in_files_while_running(run):
    deployment, captured = run
    files = [path.relative_to(deployment.root).as_posix() for path in _files(deployment.root)]

    findings = _findings(deployment.root, captured)

    assert findings == []
    # The search covered the live WAL files and every log.
    assert "keystore/data/keystore.sqlite3-wal" in files
    assert (deployment.root / "keystore/data/keystore.sqlite3-wal").stat().st_size > 0
    assert "keystore/server.log" in files
    assert "secret/server.log" in files
    assert any(name.endswith(".stderr") and name.startswith("keystore-") for name in files)
    assert any(name.endswith(".stderr") and name.startswith("secret-") for name in files)
    assert "released record" in deployment.keystore.stderr()


def test_search_finds_planted_secret(run, tmp_path):
    """Check that the search finds each form it looks for, so an empty result means something."""
    _deployment, captured = run
    share = captured.shares[0]
    prefix, random_part = captured.keys[0]
    planted = {
        "raw.bin": b"x" + share + b"y",
        "hex.log": b"share=" + share.hex().encode(),
        "b64.log": b"blob " + base64.b64encode(b"\x01\x02" + share + b"\x03"),
        "urlsafe.log": base64.urlsafe_b64encode(b"\x09" + (prefix + random_part).encode()),
        "piece.log": b"key ends in " + random_part[-12:].encode(),
    }
    for name, content in planted.items():
        (tmp_path / name).write_bytes(content)

    findings = _findings(tmp_path, captured)

    for name in planted:
        assert any(finding.endswith(f" in {name}") for finding in findings), name


def test_no_secret_in_files_after_stop(run):
    deployment, captured = run
    deployment.stop()

    assert _findings(deployment.root, captured) == []


# The secret server stores only this metadata per record. A new table or
# column fails this test until someone checks that it holds no per-key secret.
# Per-key state on the secret server is metadata only: tombstones and deny rules.
# Retirement approvals name a KEK-B version and a security identity, never a key.
_SECRET_SERVER_SCHEMA = {
    "tombstones": {"record_id", "workspace", "reason", "actor", "created_at_ms"},
    "access_rules": {"subject_kind", "subject", "disabled", "reason", "actor", "updated_at_ms"},
    "access_head": {"id", "generation", "mac_version", "mac"},
    "retire_approvals": {"version", "identity", "approved_at_ms", "mac_version", "mac"},
    "tombstone_head": {"id", "generation", "mac_version", "mac"},
}


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_secret_database_holds_only_metadata(run):
    deployment, _captured = run
    connection = _open_read_only(deployment.root / "secret/data/secret.sqlite3")
    try:
        tables = [
            name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        schema = {
            table: {column[1] for column in connection.execute(f"PRAGMA table_info({table})")} for table in tables
        }
    finally:
        connection.close()

    assert schema == _SECRET_SERVER_SCHEMA


def _looks_like_32_bytes(value) -> bool:
    if isinstance(value, bytes):
        return len(value) == 32
    if not isinstance(value, str):
        return False
    if len(value) == 64 and all(char in "0123456789abcdefABCDEF" for char in value):
        return True
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False


def test_secret_database_holds_no_32_byte_value(run):
    deployment, _captured = run
    connection = _open_read_only(deployment.root / "secret/data/secret.sqlite3")
    try:
        tables = [
            name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        cells = [value for table in tables for row in connection.execute(f"SELECT * FROM {table}") for value in row]
    finally:
        connection.close()

    assert [value for value in cells if _looks_like_32_bytes(value)] == []


def test_secret_data_folder_holds_no_share(run):
    deployment, captured = run
    data = deployment.root / "secret/data"
    share_needles = [form for share in captured.shares for form in _forms(share)]

    files = _files(data)

    assert files
    for path in files:
        content = path.read_bytes()
        assert not any(needle in content for needle in share_needles), path.name
