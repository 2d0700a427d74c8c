"""SQLite write locking in the real keystore: concurrent writers, and a lock held past the busy timeout.

Every keystore write transaction starts with BEGIN IMMEDIATE, so concurrent
writers queue on the busy timeout instead of failing with "database is
locked". A lock still held when the timeout runs out must reach the caller
as a retryable TransportError with code UNAVAILABLE, never as INTERNAL.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
import tomllib
from concurrent import futures

import pytest
import tomli_w

from client import KeyClient
from splitkey.errors import SplitkeyError, TransportError
from tests.raw_rpc import keystore_database, open_database, write_client_config
from tests.servers import ByokOnAddClient, ServerProcess

THREADS = 8
ADDS_PER_THREAD = 50
BUSY_TIMEOUT_S = 1


def _new_key() -> str:
    return f"sk-proj-TESTONLY-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def single_attempt_app(deployment):
    """An app client that does not retry, so a single lock error reaches the test.

    Each add_key first sets its workspace to byok mode, so every add is two keystore writes.
    """
    path = write_client_config(deployment, "app", "client-app-single-attempt.toml", {"retry": {"max_attempts": 1}})
    with ByokOnAddClient.from_config(path, harden=False) as client:
        yield client


def test_concurrent_adds_on_different_workspaces(deployment, single_attempt_app, worker):
    added: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def add_many(thread_number: int) -> None:
        for number in range(ADDS_PER_THREAD):
            workspace, key = f"c7-{thread_number}-{number}", _new_key()
            try:
                result = single_attempt_app.add_key(workspace, "openai", key)
            except SplitkeyError as error:
                with lock:
                    errors.append(f"{workspace}: {type(error).__name__}: {error}")
                continue
            with lock:
                added[workspace] = (result.record_id, key)

    with futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(add_many, range(THREADS)))

    assert errors == []
    assert len(added) == THREADS * ADDS_PER_THREAD
    server_log = deployment.keystore.stderr()
    assert "database write lock not acquired" not in server_log
    assert "database is locked" not in server_log

    connection = open_database(keystore_database(deployment))
    try:
        rows = connection.execute(
            "SELECT workspace, record_id, status FROM records WHERE workspace LIKE 'c7-%'"
        ).fetchall()
    finally:
        connection.close()
    assert len(rows) == THREADS * ADDS_PER_THREAD
    for row in rows:
        assert row["status"] == "active"
        assert added[row["workspace"]][0] == row["record_id"]

    for workspace in random.Random(7).sample(sorted(added), 25):
        assert worker.decrypt(workspace, "openai").reveal() == added[workspace][1], workspace


@pytest.fixture
def short_timeout_keystore(deployment):
    """Run the keystore from a copy of keystore.toml with a 1 s busy timeout, then restore the original."""
    document = tomllib.loads((deployment.root / "keystore.toml").read_text())
    document.setdefault("limits", {})["sqlite_busy_timeout_s"] = BUSY_TIMEOUT_S
    config = deployment.root / "keystore-short-busy-timeout.toml"
    config.write_text(tomli_w.dumps(document))

    deployment.keystore.stop()
    keystore = ServerProcess("keystore", config, deployment.root).start()
    try:
        yield keystore
    finally:
        keystore.stop()
        deployment.keystore.start()


def test_lock_held_past_busy_timeout(deployment, short_timeout_keystore):
    # A fresh client: the module's clients hold channels to the keystore process that was replaced.
    path = write_client_config(deployment, "app", "client-app-single-attempt.toml", {"retry": {"max_attempts": 1}})
    with KeyClient.from_config(path, harden=False) as app:
        app.set_mode("busy-reader", "byok")
        app.set_mode("busy-writer", "byok")
        reader_key = _new_key()
        app.add_key("busy-reader", "openai", reader_key)
        key = _new_key()
        holder = open_database(keystore_database(deployment))
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(TransportError) as caught:
                app.add_key("busy-writer", "openai", key)
            elapsed = time.monotonic() - started

            # WAL readers do not wait for the write lock.
            with deployment.client("worker") as fresh_worker:
                assert fresh_worker.decrypt("busy-reader", "openai").reveal() == reader_key
        finally:
            holder.execute("ROLLBACK")

        assert caught.value.code == "UNAVAILABLE"
        assert "busy" in str(caught.value)
        assert key not in str(caught.value)
        # The server waited for about the busy timeout before giving up (wide bounds for a loaded machine).
        assert elapsed >= BUSY_TIMEOUT_S * 0.8
        assert elapsed < BUSY_TIMEOUT_S + 4
        assert "INTERNAL" not in short_timeout_keystore.stderr()
        assert "unexpected" not in short_timeout_keystore.stderr()

        count = holder.execute("SELECT COUNT(*) FROM records WHERE workspace = 'busy-writer'").fetchone()[0]
        assert count == 0

        app.add_key("busy-writer", "openai", key)
        holder.close()

    with deployment.client("worker") as fresh_worker:
        assert fresh_worker.decrypt("busy-writer", "openai").reveal() == key
