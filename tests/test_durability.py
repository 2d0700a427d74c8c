"""A key whose add_key returned survives `kill -9` of the keystore at once afterwards."""

from __future__ import annotations

import secrets
import threading

from splitkey.errors import SplitkeyError
from tests.raw_rpc import keystore_database, open_database


def _new_key() -> str:
    return f"sk-proj-TESTONLY-{secrets.token_hex(16)}"


def _restart_keystore_hard(deployment) -> None:
    deployment.keystore.kill()
    assert not deployment.keystore.alive()
    deployment.keystore.start()


def test_key_survives_kill_after_add(deployment):
    stored: dict[str, str] = {}
    for round_number in range(6):
        workspace = f"durable-{round_number}"
        key = _new_key()
        # A fresh client per round: a channel to a killed server may sit in its
        # reconnect backoff, which is not what this test is about.
        with deployment.client("app") as app:
            added = app.add_key(workspace, "openai", key)
        assert added.record_id
        stored[workspace] = key

        _restart_keystore_hard(deployment)

        with deployment.client("worker") as worker:
            for earlier_workspace, earlier_key in stored.items():
                assert worker.decrypt(earlier_workspace, "openai").reveal() == earlier_key, earlier_workspace


def test_replacement_survives_kill(deployment):
    first, second = _new_key(), _new_key()
    with deployment.client("app") as app:
        app.add_key("durable-replace", "openai", first)
        added = app.add_key("durable-replace", "openai", second)
    assert added.replaced_record_id

    _restart_keystore_hard(deployment)

    with deployment.client("worker") as worker:
        assert worker.decrypt("durable-replace", "openai").reveal() == second
    with deployment.client("app") as app:
        statuses = {info.record_id: info.status for info in app.list_keys("durable-replace")}
    assert statuses[added.record_id] == "active"
    assert statuses[added.replaced_record_id] == "replaced"


def test_acknowledged_writes_survive_kill_mid_stream(deployment):
    """Kill the keystore while a writer is adding keys; every add that returned must be there."""
    acknowledged: list[tuple[str, str]] = []
    enough = threading.Event()
    failures: list[SplitkeyError] = []

    def write_until_failure() -> None:
        with deployment.client("app") as app:
            for number in range(500):
                workspace, key = f"stream-{number}", _new_key()
                try:
                    app.add_key(workspace, "openai", key)
                except SplitkeyError as error:
                    failures.append(error)
                    return
                acknowledged.append((workspace, key))
                if len(acknowledged) >= 20:
                    enough.set()

    writer = threading.Thread(target=write_until_failure)
    writer.start()
    assert enough.wait(60), "the writer did not get 20 adds acknowledged within 60 s"
    deployment.keystore.kill()
    writer.join(60)
    assert not writer.is_alive()
    # The writer stopped because the keystore went away, not because it ran out of work.
    assert len(failures) == 1

    deployment.keystore.start()

    connection = open_database(keystore_database(deployment))
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = connection.execute("SELECT COUNT(*) FROM records WHERE workspace LIKE 'stream-%'").fetchone()[0]
    finally:
        connection.close()
    # The add in flight at the kill may or may not have been committed.
    assert len(acknowledged) <= stored <= len(acknowledged) + 1
    with deployment.client("worker") as worker:
        for workspace, key in acknowledged:
            assert worker.decrypt(workspace, "openai").reveal() == key, workspace
