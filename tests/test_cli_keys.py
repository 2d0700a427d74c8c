"""The `splitkey keys` and `splitkey workspace` commands against the real servers."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

from tests.servers import REPO_ROOT

API_KEY = "sk-proj-TESTONLY-cli" + secrets.token_hex(12)


def _splitkey(deployment, role: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli.main", *args, "--config", str(deployment.client_config(role))],
        input=stdin, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )


def test_cli_key_lifecycle(deployment):
    mode = _splitkey(deployment, "app", "workspace", "mode", "ws-cli", "byok", "--json")
    assert mode.returncode == 0, mode.stderr
    assert json.loads(mode.stdout)["mode"] == "byok"

    added = _splitkey(deployment, "app", "keys", "add", "ws-cli", "openai", stdin=f"  {API_KEY}\n")
    assert added.returncode == 0, added.stderr
    assert f"{API_KEY[:4]}…{API_KEY[-4:]}" in added.stdout
    assert "WORKSPACE" in added.stdout.splitlines()[0]

    listed = _splitkey(deployment, "app", "keys", "list", "ws-cli", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["provider"] == "openai"
    assert row["status"] == "active"

    removed = _splitkey(deployment, "app", "keys", "remove", "ws-cli", "openai")
    assert removed.returncode == 0, removed.stderr
    after = _splitkey(deployment, "app", "keys", "list", "ws-cli", "--json", "--all")
    assert [item["status"] for item in json.loads(after.stdout)] == ["removed"]

    for result in (mode, added, listed, removed, after):
        assert API_KEY not in result.stdout + result.stderr


def test_cli_rejects_bad_key_with_position(deployment):
    result = _splitkey(deployment, "app", "keys", "add", "ws-cli-bad", "openai", stdin="sk-proj-TEST ONLY-abcdefgh\n")
    assert result.returncode == 1
    assert "position 13" in result.stderr
    assert "TEST ONLY" not in result.stderr


def test_cli_wrong_role_config_is_denied(deployment):
    result = _splitkey(deployment, "worker", "keys", "list", "ws-cli")
    assert result.returncode == 1
    assert "may not call ListKeys" in result.stderr
