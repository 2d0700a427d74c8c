"""Processes that hold key material allow no core dumps and no ptrace by peers."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from splitkey.secret import SecretBytes, SecretKey


def _core_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max core file size"):
                return line.split()[4]
    raise AssertionError("no core limit line")


@pytest.mark.parametrize("server", ["keystore", "secret"])
def test_server_disables_core_dumps(deployment, server):
    process = getattr(deployment, server)
    assert _core_limit(process.pid) == "0"


def test_client_disables_core_dumps(deployment):
    script = (
        "from client import KeyClient; from splitkey.hardening import is_dumpable; "
        f"KeyClient.from_config({str(deployment.client_config('worker'))!r}); print(is_dumpable())"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_secret_holders_refuse_pickling():
    for secret in (SecretBytes(b"\x01" * 32, "share"), SecretKey("sk-proj-TESTONLY-abcdefgh")):
        with pytest.raises(TypeError):
            pickle.dumps(secret)
        assert "redacted" in repr(secret) or "…" in repr(secret)


def test_secret_key_str_and_format_masked():
    key = SecretKey("AIzaTESTONLYabcdefghijklmnopqrstuvwxyz12")
    for text in (str(key), repr(key), f"{key}", "{}".format(key), "%s" % key):
        assert "TESTONLY" not in text
        assert "AIza…yz12" in text
