"""docs/rotation.md names the client configuration the rotation commands really use."""

from __future__ import annotations

import argparse
from pathlib import Path

from client.cli.client_config import CONFIG_ENV, client_config_path
from tests.servers import REPO_ROOT

DOC = REPO_ROOT / "docs" / "rotation.md"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_docs_name_config_lookup_order(tmp_path, monkeypatch):
    text = _one_line(DOC.read_text())
    default = Path(".splitkey-dev") / "client-security.toml"
    # The order the code uses: the option, then the environment variable, then the default file.
    monkeypatch.chdir(tmp_path)
    (tmp_path / default).parent.mkdir()
    (tmp_path / default).write_text("")
    monkeypatch.setenv(CONFIG_ENV, "from-env.toml")
    assert client_config_path(argparse.Namespace(client_config="given.toml"), "security") == Path("given.toml")
    assert client_config_path(argparse.Namespace(client_config=None), "security") == Path("from-env.toml")
    monkeypatch.delenv(CONFIG_ENV)
    assert client_config_path(argparse.Namespace(client_config=None), "security") == default

    option = text.index("`--config PATH`")
    environment = text.index(f"`${CONFIG_ENV}`")
    default_file = text.index(f"`{default.as_posix()}`")
    assert option < environment < default_file
    assert "(the default file name)" not in text
