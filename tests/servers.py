"""Run the real splitkey servers as child processes on 127.0.0.1 for tests."""

from __future__ import annotations

from pathlib import Path

from client.cli.server_process import ServerProcess
from splitkey.kek import Argon2Params
from splitkey.pki.deployment import init_deployment

REPO_ROOT = Path(__file__).resolve().parent.parent
# Cheap Argon2 so each test deployment unseals in milliseconds; one test keeps the defaults.
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)


class Deployment:
    """A development deployment in a folder, with both servers running."""

    def __init__(self, root: Path):
        self.root = root
        self.keystore = ServerProcess("keystore", root / "keystore.toml", root)
        self.secret = ServerProcess("secret", root / "secret.toml", root)

    @classmethod
    def create(cls, root: Path, **kwargs) -> "Deployment":
        init_deployment(root, argon2_params=FAST_ARGON2, **kwargs)
        return cls(root)

    def start(self) -> "Deployment":
        self.secret.start()
        self.keystore.start()
        return self

    def stop(self) -> None:
        self.keystore.stop()
        self.secret.stop()

    def client_config(self, role: str) -> Path:
        return self.root / f"client-{role}.toml"

    def client(self, role: str, *, byok_on_add: bool = True):
        """A real KeyClient for `role`.

        With `byok_on_add`, every add_key to a customer workspace first sets
        the workspace to byok mode, so tests that store and use a customer key
        need no mode step. Tests of modes pass byok_on_add=False.
        """
        from client import KeyClient

        config = self.client_config(role)
        if byok_on_add and role == "app":
            return ByokOnAddClient.from_config(config, harden=False)
        return KeyClient.from_config(config, harden=False)


def _byok_on_add_class():
    from client import KeyClient

    class _ByokOnAddClient(KeyClient):
        def add_key(self, workspace, provider, api_key):
            self.set_mode(workspace, "byok")
            return super().add_key(workspace, provider, api_key)

    return _ByokOnAddClient


ByokOnAddClient = _byok_on_add_class()
