"""Write locking: 8 threads x 50 store operations while a re-wrap job commits one-row batches."""

from __future__ import annotations

import threading

from tests import rotation_support as support
from tests.servers import Deployment

THREADS = 8
OPERATIONS = 50


def test_store_and_rewrap_without_lock_errors(tmp_path):
    deployment = Deployment.create(tmp_path / "dev").start()
    try:
        keys = support.add_keys(deployment, 40)
        errors: list[str] = []
        latest: dict[str, str] = {}
        lock = threading.Lock()

        def store(thread: int) -> None:
            with deployment.client("app") as app:
                for operation in range(OPERATIONS):
                    name = f"lock-{thread}-{operation % 5}"
                    value = f"sk-proj-TESTONLY-lock{thread}x{operation:03d}abcd"
                    try:
                        app.add_key(name, "openai", value)
                    except Exception as error:  # noqa: BLE001 - every failure is asserted on
                        with lock:
                            errors.append(f"{name}: {type(error).__name__}: {error}")
                        continue
                    with lock:
                        latest[name] = value

        with support.admin(deployment) as admin:
            admin.rotate("kek-b", batch_size=1, max_rows_per_second=1000)
            threads = [threading.Thread(target=store, args=(index,)) for index in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            finished = support.wait_for_job(admin, "kek-b")
            if finished.rows_done == 0:
                raise AssertionError("the re-wrap job did no work while the stores ran")
            # Rows written during the job under v1 are picked up by a second job.
            admin.start_rewrap("kek-b")
            assert support.wait_for_job(admin, "kek-b").state == "done"

        assert errors == []
        assert len(latest) == THREADS * 5
        log = (deployment.root / "keystore" / "server.log").read_text()
        assert "database write lock not acquired" not in log
        assert "database is locked" not in log
        assert {row["kek_b_version"] for row in support.rows(deployment).values()} == {2}
        with deployment.client("worker") as worker:
            for name, value in {**keys, **latest}.items():
                assert worker.decrypt(name, "openai").reveal() == value, name
    finally:
        deployment.stop()
