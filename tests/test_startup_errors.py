"""A server with an unusable database refuses to start with one clear line."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import REPO_ROOT, Deployment


def test_corrupt_database_refused(tmp_path):
    deployment = Deployment.create(tmp_path / "dev")
    database = deployment.root / "keystore" / "data" / "keystore.sqlite3"
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_bytes(b"this is not a database" * 200)
    result = subprocess.run(
        [sys.executable, "-m", "client.cli.main", "keystore", "serve", "--config", str(deployment.root / "keystore.toml")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )
    assert result.returncode == 1
    assert f"database {database} cannot be opened" in result.stderr
    assert "Traceback" not in result.stderr
