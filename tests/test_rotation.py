"""KEK-A and KEK-B rotation against real servers: online, resumable after kill -9, shares refreshed."""

from __future__ import annotations

import pytest

from splitkey.record import wrap_version
from tests import rotation_support as support
from tests.servers import Deployment

KEYS = 60


@pytest.fixture
def fresh(tmp_path):
    deployment = Deployment.create(tmp_path / "dev").start()
    keys = support.add_keys(deployment, KEYS)
    yield deployment, keys
    deployment.stop()


def _assert_all_decrypt(deployment, keys) -> None:
    with deployment.client("worker") as worker:
        for name, expected in keys.items():
            assert worker.decrypt(name, "openai").reveal() == expected, name


@pytest.mark.parametrize("kind", ["kek-a", "kek-b"])
def test_rotation_under_decrypt_load(fresh, kind):
    deployment, keys = fresh
    before = support.rows(deployment)
    with support.admin(deployment) as admin, support.DecryptLoad(deployment, keys) as load:
        job = admin.rotate(kind, batch_size=5, max_rows_per_second=40)
        assert job.target_version == 2
        finished = support.wait_for_job(admin, kind)
        reads_during_job = load.successes
    assert finished.state == "done", finished.last_error
    assert finished.rows_done == KEYS
    assert load.failures == []
    assert reads_during_job > 0

    after = support.rows(deployment)
    column = "kek_a_version" if kind == "kek-a" else "kek_b_version"
    assert {row[column] for row in after.values()} == {2}
    if kind == "kek-b":
        assert {wrap_version(row["wrap_b"]) for row in after.values()} == {2}
    for record_id, row in after.items():
        assert row["row_version"] == before[record_id]["row_version"] + 1
    _assert_all_decrypt(deployment, keys)


def test_kek_b_rotation_refreshes_shares(fresh):
    deployment, keys = fresh
    kek_a, kek_b_v1 = support.keyrings(deployment)
    before = {rid: support.shares(row, kek_a, kek_b_v1) for rid, row in support.rows(deployment).items()}
    with support.admin(deployment) as admin:
        admin.rotate("kek-b")
        assert support.wait_for_job(admin, "kek-b").state == "done"
    kek_a, kek_b = support.keyrings(deployment)
    after = {rid: support.shares(row, kek_a, kek_b) for rid, row in support.rows(deployment).items()}

    assert after.keys() == before.keys()
    for record_id in before:
        old_a, old_b = before[record_id]
        new_a, new_b = after[record_id]
        assert new_a != old_a, record_id
        assert new_b != old_b, record_id
        # Same DEK: the two XOR masks cancel.
        assert bytes(x ^ y for x, y in zip(new_a, new_b)) == bytes(x ^ y for x, y in zip(old_a, old_b))
    _assert_all_decrypt(deployment, keys)


def test_replaced_key_keeps_new_value(fresh):
    deployment, keys = fresh
    replaced = {support.workspace(index): support.api_key(index, generation=1) for index in range(0, KEYS, 6)}
    with support.admin(deployment) as admin, deployment.client("app") as app:
        admin.rotate("kek-b", batch_size=2, max_rows_per_second=20)
        for name, value in replaced.items():
            app.add_key(name, "openai", value)
        assert admin.status("kek-b")[0].state == "running", "the job ended before the replacements; slow it down"
        finished = support.wait_for_job(admin, "kek-b")
    assert finished.state == "done", finished.last_error
    keys.update(replaced)
    _assert_all_decrypt(deployment, keys)
    statuses = [row["status"] for row in support.rows(deployment).values()]
    assert statuses.count("replaced") == len(replaced)
    assert {row["kek_b_version"] for row in support.rows(deployment).values()} == {2}


@pytest.mark.parametrize(
    ("kind", "victim"),
    [("kek-a", "keystore"), ("kek-b", "keystore"), ("kek-b", "secret")],
)
def test_job_resumes_after_kill(fresh, kind, victim):
    deployment, keys = fresh
    kek_a, kek_b = support.keyrings(deployment)
    before = {rid: support.shares(row, kek_a, kek_b) for rid, row in support.rows(deployment).items()}
    with support.admin(deployment) as admin:
        admin.rotate(kind, batch_size=3, max_rows_per_second=30)
        progress = support.wait_for_progress(admin, kind, rows=9)
        assert progress.state == "running"
    process = getattr(deployment, victim)
    process.kill()
    partial = support.rows(deployment)
    column = "kek_a_version" if kind == "kek-a" else "kek_b_version"
    moved = sum(1 for row in partial.values() if row[column] == 2)
    assert 0 < moved < KEYS, "the kill should land in the middle of the job"
    if victim == "secret":
        # The keystore's job keeps retrying while the secret server is down.
        import time

        time.sleep(1.5)
    process.start()

    with support.admin(deployment) as admin:
        finished = support.wait_for_job(admin, kind)
    assert finished.state == "done", finished.last_error
    after = support.rows(deployment)
    assert {row[column] for row in after.values()} == {2}
    kek_a, kek_b = support.keyrings(deployment)
    for record_id, row in after.items():
        new_a, new_b = support.shares(row, kek_a, kek_b)
        old_a, old_b = before[record_id]
        assert bytes(x ^ y for x, y in zip(new_a, new_b)) == bytes(x ^ y for x, y in zip(old_a, old_b))
        if kind == "kek-b":
            assert new_a != old_a, f"share_a of {record_id} was not refreshed"
    _assert_all_decrypt(deployment, keys)
