"""The `splitkey` command: servers, deployment set-up, key management and the demo job."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from splitkey.errors import SplitkeyError

# Command groups register themselves lazily so that `splitkey keys ...` on a
# worker host never imports server code. Each module has `register(subparsers)`.
_COMMAND_MODULES = (
    "client.cli.server_commands",
    "client.cli.pki_commands",
    "client.cli.up_command",
    "client.cli.key_commands",
    "client.cli.rotate_commands",
    "client.cli.audit_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitkey",
        description="Split-custody storage of AI-provider API keys.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level (never logs key material)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if not getattr(args, "configures_logging", False):
        logging.basicConfig(
            # Retries are logged at WARNING by the library; a command shows only
            # its final error unless --verbose is given.
            level=logging.DEBUG if args.verbose else logging.ERROR,
            format="%(levelname)s %(name)s: %(message)s",
        )
    try:
        return int(args.func(args) or 0)
    except SplitkeyError as error:
        print(f"splitkey: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
