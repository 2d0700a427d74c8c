from __future__ import annotations

import pytest

from tests.servers import Deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Both servers running on one fresh development deployment, shared by a test module."""
    running = Deployment.create(tmp_path_factory.mktemp("deployment") / "dev").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def app(deployment):
    with deployment.client("app") as client:
        yield client


@pytest.fixture(scope="module")
def worker(deployment):
    with deployment.client("worker") as client:
        yield client
