"""`rotate` while a re-wrap job of the same kind runs: rejected before any version is added or activated."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from splitkey.errors import PreconditionError
from splitkey.v1 import admin_pb2
from tests import rotation_support as support
from tests.servers import REPO_ROOT, Deployment

KEYS = 20


@pytest.fixture
def deployment(tmp_path):
    running = Deployment.create(tmp_path / "dev").start()
    support.add_keys(running, KEYS)
    yield running
    running.stop()


def _states(admin, kind: str) -> dict[int, str]:
    return {item.version: item.state for item in admin.versions(kind).versions}


def _assert_names_job(message: str, job) -> None:
    assert job.job_id in message
    assert f"to version {job.target_version}" in message
    assert "rows done" in message
    assert "splitkey rotate status" in message


@pytest.mark.parametrize("kind", ["kek-a", "kek-b"])
def test_rotate_rejected_while_job_runs(deployment, kind):
    with support.admin(deployment) as admin:
        job = admin.rotate(kind, batch_size=1, max_rows_per_second=4)
        assert job.target_version == 2
        before = _states(admin, kind)

        with pytest.raises(PreconditionError) as refused:
            admin.rotate(kind)
        _assert_names_job(str(refused.value), job)
        assert admin.status(kind)[0].state == "running", "the job ended before the second rotate; slow it down"
        assert _states(admin, kind) == before == {1: "added", 2: "active"}

        finished = support.wait_for_job(admin, kind)
        assert finished.state == "done", finished.last_error
        assert finished.job_id == job.job_id
        again = admin.rotate(kind)
        assert again.target_version == 3
        assert support.wait_for_job(admin, kind).state == "done"
    column = "kek_a_version" if kind == "kek-a" else "kek_b_version"
    assert {row[column] for row in support.rows(deployment).values()} == {3}


def test_keystore_rejects_kek_a_version_change_during_job(deployment):
    with support.admin(deployment) as admin:
        job = admin.rotate("kek-a", batch_size=1, max_rows_per_second=4)
        # AddKekVersion and ActivateKekVersion themselves, without the client's own check first.
        with pytest.raises(PreconditionError) as added:
            admin._call(admin._keystore, "AddKekVersion",
                        admin_pb2.AddKekVersionRequest(request_id=uuid.uuid4().hex), retry=False)
        _assert_names_job(str(added.value), job)
        with pytest.raises(PreconditionError) as activated:
            admin.activate_version("kek-a", 1)
        _assert_names_job(str(activated.value), job)
        assert admin.status("kek-a")[0].state == "running", "the job ended too early; slow it down"
        assert _states(admin, "kek-a") == {1: "added", 2: "active"}
        assert support.wait_for_job(admin, "kek-a").state == "done"


def _splitkey(deployment, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli.main", *args, "--config", str(deployment.client_config("security"))],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )


def test_cli_rotate_prints_active_version(deployment):
    first = _splitkey(deployment, "rotate", "kek-b", "--no-wait", "--batch-size", "1", "--rate", "4")
    assert first.returncode == 0, first.stderr
    assert "kek-b: version 2 is active; re-wrap job" in first.stdout
    assert "to version 2 started (20 rows)" in first.stdout

    second = _splitkey(deployment, "rotate", "kek-b", "--no-wait")
    assert second.returncode == 1, second.stdout
    assert "is still running" in second.stderr
    assert "version 3" not in second.stdout + second.stderr
    with support.admin(deployment) as admin:
        assert _states(admin, "kek-b") == {1: "added", 2: "active"}
        assert support.wait_for_job(admin, "kek-b").state == "done"


def test_job_follows_version_activated_behind_it(deployment):
    with support.admin(deployment) as admin:
        # One batch contains every row, and the rate limit then pauses the job for about 5 s
        # before its pass ends, so the activation below lands after the last batch.
        admin.rotate("kek-b", batch_size=KEYS, max_rows_per_second=4)
        moved = support.wait_for_progress(admin, "kek-b", rows=KEYS)
        assert moved.state == "running", "the pass ended before the activation; lower the rate"
        # SecretAdmin directly, as another tool would, so the client's own check does not run.
        added = admin._call(admin._secret, "AddKekVersion",
                            admin_pb2.AddKekVersionRequest(request_id=uuid.uuid4().hex), retry=False)
        assert 3 in {item.version for item in added.versions}
        admin._call(admin._secret, "ActivateKekVersion",
                    admin_pb2.ActivateKekVersionRequest(request_id=uuid.uuid4().hex, version=3))

        finished = support.wait_for_job(admin, "kek-b")
    assert finished.state == "done", finished.last_error
    assert finished.target_version == 3
    assert finished.rows_left == 0
    assert {row["kek_b_version"] for row in support.rows(deployment).values()} == {3}
