"""`splitkey keystore ...` and `splitkey secret ...`: run a server, or create its KEK."""

from __future__ import annotations

import os


# Databases, logs and audit files are created readable by the service user only.
_SERVER_UMASK = 0o077


def _serve_keystore(args) -> int:
    from keystore_server.main import serve

    os.umask(_SERVER_UMASK)
    return serve(args.config)


def _serve_secret(args) -> int:
    from secret_server.main import serve

    os.umask(_SERVER_UMASK)
    return serve(args.config)


def register(subparsers) -> None:
    for name, help_text, serve, purpose in (
        ("keystore", "the keystore server (ciphertexts, KEK-A)", _serve_keystore, "kek-a"),
        ("secret", "the secret server (KEK-B)", _serve_secret, "kek-b"),
    ):
        group = subparsers.add_parser(name, help=help_text)
        commands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
        serve_parser = commands.add_parser("serve", help=f"run the {name} server until SIGTERM or Ctrl-C")
        serve_parser.add_argument("--config", required=True, help=f"path to {name}.toml")
        serve_parser.set_defaults(func=serve, configures_logging=True)
        try:
            from client.cli.kek_commands import register_init_kek
        except ModuleNotFoundError:
            continue
        register_init_kek(commands, purpose)
