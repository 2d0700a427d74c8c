"""`splitkey keystore init-kek` and `splitkey secret init-kek`: create a KEK keyring on this host.

The passphrase comes from a file or an environment variable. There is no
option that takes the passphrase itself, because command lines are visible to
other users in the process list and end up in shell history.
"""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

from splitkey.config import PassphraseSource
from splitkey.errors import ConfigError
from splitkey.kek import PURPOSES, create_keyring

_LABELS = {"kek-a": ("KEK-A", "keystore"), "kek-b": ("KEK-B", "secret server")}

# Below this many bytes a passphrase gets a warning. It is not rejected,
# because the operator may feed it from a secret store with its own rules.
_SHORT_PASSPHRASE = 16


def register_init_kek(subparsers, purpose: str) -> None:
    """Add `init-kek` for `purpose` ("kek-a" or "kek-b") to a server's command group."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    label, server = _LABELS[purpose]
    parser = subparsers.add_parser(
        "init-kek",
        help=f"create the {label} keyring on this host",
        description=(
            f"Generate {label}, sealed under a passphrase, as version 1 of a new keyring. Run it on the "
            f"{server} host itself: the KEK must never be created elsewhere or copied."
        ),
    )
    parser.add_argument("--keyring", required=True, type=Path, metavar="PATH", help="keyring file to create, which must not exist yet")
    parser.add_argument(
        "--trust-domain", required=True, metavar="TD", help="trust domain (deployment id) the KEK is bound to"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--passphrase-file", type=Path, metavar="FILE", help="file containing the passphrase (one trailing newline is ignored)"
    )
    source.add_argument("--passphrase-env", metavar="VAR", help="environment variable containing the passphrase")
    parser.set_defaults(func=run_init_kek, kek_purpose=purpose)


def _warn_if_exposed(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        print(f"warning: passphrase file {path} is readable by group or others (mode {mode:o}); chmod 600 it", file=sys.stderr)


def _read_passphrase_file(source: PassphraseSource, path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"passphrase file {path} does not exist; create it first (mode 600)")
    try:
        passphrase = source.read()
    except OSError as error:
        raise ConfigError(f"cannot read passphrase file {path}: {error.strerror}") from None
    _warn_if_exposed(path)
    return passphrase


def run_init_kek(args: argparse.Namespace) -> int:
    """Create the keyring named by the arguments; return the exit code."""
    label, server = _LABELS[args.kek_purpose]
    source = PassphraseSource(file=args.passphrase_file, env=args.passphrase_env)
    try:
        if args.passphrase_file is not None:
            passphrase = _read_passphrase_file(source, args.passphrase_file)
        else:
            passphrase = source.read()
        if len(passphrase) < _SHORT_PASSPHRASE:
            print(f"warning: the passphrase is shorter than {_SHORT_PASSPHRASE} bytes", file=sys.stderr)
        create_keyring(args.keyring, args.kek_purpose, args.trust_domain, passphrase)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Created the {label} keyring {args.keyring} for trust domain {args.trust_domain}; version 1 is active.")
    print(f"Back up the keyring and the passphrase separately, on the {server} side only.")
    print("Losing either one makes every stored key unrecoverable.")
    return 0
