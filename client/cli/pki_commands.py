"""`splitkey pki ...`: create a development deployment and issue client certificates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from splitkey.config import load_client_config, load_keystore_config, load_secret_config
from splitkey.errors import ConfigError
from splitkey.pki.deployment import (
    DEV_CLIENT_NAME,
    DEV_CLIENT_ROLES,
    KEYSTORE_IDENTITY_NAME,
    init_deployment,
    issue_client,
    spiffe_id,
)


def register(subparsers) -> None:
    """Add the `pki` command group and its subcommands to the top-level subparsers."""
    pki = subparsers.add_parser(
        "pki",
        help="create development certificates and deployments",
        description="Create development certificates and deployments.",
    )
    commands = pki.add_subparsers(dest="pki_command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="create a complete development deployment in DIR",
        description=(
            "Create both CAs, both KEK keyrings, server and client certificates and one TOML file "
            "per server and client role in DIR. For development only: it puts both halves of the "
            "split on one machine."
        ),
    )
    init.add_argument("directory", metavar="DIR", type=Path, help="folder to create, which must be empty unless --force is given")
    init.add_argument(
        "--trust-domain", default="splitkey.test", help="SPIFFE trust domain and deployment id (default: %(default)s)"
    )
    init.add_argument(
        "--keystore-address",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="keystore listen address, where port 0 picks a free port now (default: %(default)s)",
    )
    init.add_argument(
        "--secret-address",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="secret server listen address, where port 0 picks a free port now (default: %(default)s)",
    )
    init.add_argument(
        "--client-days", type=int, default=30, metavar="N", help="validity of client certificates in days (default: %(default)s)"
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing deployment in DIR, including its keys and server data",
    )
    init.set_defaults(func=run_init)

    issue = commands.add_parser(
        "issue-client",
        help="issue or renew the certificates of one client identity",
        description=(
            "Issue the certificates and TOML file of spiffe://<trust-domain>/ROLE/NAME in an existing "
            "development deployment, replacing those of the same identity."
        ),
    )
    issue.add_argument("directory", metavar="DIR", type=Path, help="deployment folder made by `pki init`")
    issue.add_argument("role", choices=DEV_CLIENT_ROLES, help="role of the identity")
    issue.add_argument("--name", default=DEV_CLIENT_NAME, help="name of the identity (default: %(default)s)")
    issue.add_argument("--days", type=int, default=30, metavar="N", help="validity in days (default: %(default)s)")
    issue.set_defaults(func=run_issue_client)


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for what, path, detail in rows:
        print(f"{what:<{widths[0]}}  {path:<{widths[1]}}  {detail}".rstrip())


def run_init(args: argparse.Namespace) -> int:
    """Run `pki init` and print what it created; return the exit code."""
    try:
        root = init_deployment(
            args.directory,
            trust_domain=args.trust_domain,
            keystore_address=args.keystore_address,
            secret_address=args.secret_address,
            client_days=args.client_days,
            force=args.force,
        )
        keystore = load_keystore_config(root / "keystore.toml")
        secret = load_secret_config(root / "secret.toml")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    domain = keystore.trust_domain
    rows = [
        ("created", "path (relative to the folder)", "detail"),
        ("keystore CA", "ca/keystore-ca.pem", "issues the keystore server and its client certificates"),
        ("secret CA", "ca/secret-ca.pem", "issues the secret server and its client certificates"),
        ("keystore server", "keystore.toml", f"listens on {keystore.listen}"),
        ("secret server", "secret.toml", f"listens on {secret.listen}"),
        ("KEK-A keyring", "keystore/kek-a.keyring.json", "version 1 active"),
        ("KEK-B keyring", "secret/kek-b.keyring.json", "version 1 active"),
        ("keystore identity", "keystore/to-secret.pem", spiffe_id(domain, "keystore", KEYSTORE_IDENTITY_NAME)),
    ]
    for role in DEV_CLIENT_ROLES:
        rows.append((f"{role} client", f"client-{role}.toml", spiffe_id(domain, role, DEV_CLIENT_NAME)))

    print(f"Created a development deployment in {root}")
    print()
    _print_table(rows)
    print()
    print(f"Client certificates expire in {args.client_days} days.")
    print("DEVELOPMENT ONLY: both CAs and both KEKs are on this machine, which defeats the split.")
    print("See README.txt in the folder.")
    return 0


def run_issue_client(args: argparse.Namespace) -> int:
    """Run `pki issue-client` and print the new configuration file; return the exit code."""
    try:
        toml_path = issue_client(args.directory, args.role, args.name, days=args.days)
        config = load_client_config(toml_path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Issued {spiffe_id(config.trust_domain, args.role, args.name)} for {args.days} days")
    print(f"Configuration: {toml_path}")
    return 0
