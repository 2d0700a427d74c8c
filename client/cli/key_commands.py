"""`splitkey keys ...` and `splitkey workspace ...`: what a settings backend or operator does with keys.

A key is read from standard input or a hidden prompt, never from the command
line, where it would land in shell history and the process table.
"""

from __future__ import annotations

import getpass
import sys

from client.cli.client_config import add_config_option, client_config_path
from client.cli.output import format_ms, print_json, print_table

def _client(args, role: str):
    from client import KeyClient

    return KeyClient.from_config(client_config_path(args, role))


def _read_key(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read()


def _result_dict(result) -> dict:
    return {
        "outcome": result.outcome.value,
        "provider": result.provider,
        "key": result.key_hint,
        "message": result.message,
        "missing_permission": getattr(result, "missing_permission", "") or "",
    }


def _add(args) -> int:
    from client.key_client import KeyCheckError

    with _client(args, "app") as client:
        api_key = _read_key(f"{args.provider} API key for {args.workspace}: ")
        try:
            added = client.add_key(args.workspace, args.provider, api_key, check=args.check)
        except KeyCheckError as error:
            if args.json:
                print_json({"stored": False, "check": _result_dict(error.result)})
            else:
                print(f"not stored: {error}", file=sys.stderr)
            return 1
        finally:
            del api_key
    if args.json:
        print_json({
            "stored": True, "record_id": added.record_id, "provider": added.provider, "key": added.masked_key,
            "replaced_record_id": added.replaced_record_id,
        })
    else:
        print_table(
            ["workspace", "provider", "key", "record", "replaced"],
            [[args.workspace, added.provider, added.masked_key, added.record_id, added.replaced_record_id or "-"]],
        )
    return 0


def _list(args) -> int:
    with _client(args, "app") as client:
        keys = client.list_keys(args.workspace)
    rows = [
        {
            "provider": info.provider, "key": info.key_hint, "status": info.status, "fingerprint": info.fingerprint,
            "created": format_ms(info.created_at_ms), "last_used": format_ms(info.last_used_at_ms),
            "record_id": info.record_id, "kek_versions": f"a{info.kek_a_version} b{info.kek_b_version}",
        }
        for info in keys
        if args.all or info.status == "active"
    ]
    if args.json:
        print_json(rows)
    else:
        columns = ["provider", "key", "status", "fingerprint", "created", "last_used", "record_id"]
        print_table(columns, [[row[name] for name in columns] for row in rows])
    return 0


def _test(args) -> int:
    from client.providers import verify_key

    with _client(args, "worker") as client:
        if args.stdin:
            from client.providers.formats import parse_model
            from client.providers import normalize_pasted_key

            provider, _model = parse_model(args.provider)
            result = verify_key(provider, normalize_pasted_key(_read_key("API key to test: ")), client.endpoints(),
                                workspace_id=args.workspace)
        else:
            result = client.check_key(args.workspace, args.provider)
    if args.json:
        print_json(_result_dict(result))
    else:
        print_table(["provider", "key", "outcome", "message"],
                    [[result.provider, result.key_hint, result.outcome.value, result.message]])
    return 0 if result.outcome.value == "valid" else 1


def _remove(args) -> int:
    with _client(args, "app") as client:
        removed = client.remove_key(args.workspace, args.provider)
    if args.json:
        print_json({"removed_record_id": removed})
    else:
        print(
            f"removed {args.provider} key of {args.workspace} (record {removed}); it cannot be decrypted again "
            "once the secret server records its tombstone, normally within seconds"
        )
    return 0


def _mode(args) -> int:
    with _client(args, "app") as client:
        info = client.set_mode(args.workspace, args.mode) if args.mode else client.get_workspace(args.workspace)
    mode = {1: "platform", 2: "byok"}.get(info.mode, "unspecified")
    if args.json:
        print_json({"workspace": info.workspace, "mode": mode, "providers": list(info.providers)})
    else:
        print_table(["workspace", "mode", "keys for"], [[info.workspace, mode, ", ".join(info.providers) or "-"]])
    return 0


def _common(parser, role: str) -> None:
    add_config_option(parser, role)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register(subparsers) -> None:
    keys = subparsers.add_parser("keys", help="add, list, test and remove a workspace's provider keys")
    commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="store a key read from stdin or a hidden prompt (never from argv)")
    add.add_argument("workspace", help="workspace id, such as ws-0001")
    add.add_argument("provider", help="openai, anthropic, google or openrouter")
    add.add_argument("--check", action="store_true", help="check the key live with the provider first; store only a valid key")
    _common(add, "app")
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list key metadata: masked key, fingerprint, status, last use")
    listing.add_argument("workspace", help="workspace id")
    listing.add_argument("--all", action="store_true", help="include replaced and removed keys")
    _common(listing, "app")
    listing.set_defaults(func=_list)

    test = commands.add_parser("test", help="check a stored key live with its provider (worker role)")
    test.add_argument("workspace", help="workspace id")
    test.add_argument("provider", help="provider or provider/model")
    test.add_argument("--stdin", action="store_true", help="test a key read from stdin instead of the stored one")
    _common(test, "worker")
    test.set_defaults(func=_test)

    remove = commands.add_parser("remove", help="remove a workspace's key for a provider and tombstone it")
    remove.add_argument("workspace", help="workspace id")
    remove.add_argument("provider", help="openai, anthropic, google or openrouter")
    _common(remove, "app")
    remove.set_defaults(func=_remove)

    workspace = subparsers.add_parser("workspace", help="a workspace's API mode")
    workspace_commands = workspace.add_subparsers(dest="workspace_command", metavar="COMMAND", required=True)
    mode = workspace_commands.add_parser("mode", help="show or set the API mode: platform (default) or byok")
    mode.add_argument("workspace", help="workspace id")
    mode.add_argument("mode", nargs="?", choices=["platform", "byok"], help="new mode; omit to show the current one")
    _common(mode, "app")
    mode.set_defaults(func=_mode)
