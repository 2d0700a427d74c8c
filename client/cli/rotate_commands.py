"""`splitkey rotate|retire|revoke|deny|verify|backup|restore`: KEK rotation and access control for the security team.

    splitkey rotate kek-a|kek-b     add and activate a version, re-wrap every row (progress bar)
    splitkey rotate status          progress of the latest job of each kind
    splitkey retire kek-a|kek-b N   propose or approve retiring version N (two security identities)
    splitkey revoke record|workspace ID --reason TEXT [--lift]
    splitkey deny WORKER_URI --reason TEXT [--lift]
    splitkey verify                 rows under a KEK version that a server no longer has
    splitkey backup / restore       on the keystore host, with its keystore.toml
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path
from client.cli.client_config import add_config_option, client_config_path

_BAR_CHARS = 30
_POLL_INTERVAL_S = 0.5


def _client(args):
    from client.admin_client import AdminClient

    return AdminClient.from_config(client_config_path(args, "security"))


def _add_client_option(parser) -> None:
    add_config_option(parser, "security")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def progress_line(job) -> str:
    """Format one job as a progress bar: rows done and left, rate, estimated time left."""
    total = job.rows_done + job.rows_left
    fraction = job.rows_done / total if total else 1.0
    filled = int(fraction * _BAR_CHARS)
    rate = job.rows_per_second
    eta = _duration(job.rows_left / rate) if rate > 0 and job.rows_left else "-"
    bar = "#" * filled + "-" * (_BAR_CHARS - filled)
    return (f"{job.kind} v{job.target_version} [{bar}] {fraction:6.1%}  {job.rows_done} done, "
            f"{job.rows_left} left, {rate:.0f} rows/s, {eta} left, {job.state}")


def _print_job(job) -> None:
    print(progress_line(job))
    if job.last_error:
        print(f"  last error: {job.last_error}")


def _follow(admin, kind: str) -> int:
    """Redraw the progress bar until the job of `kind` ends; return the exit code."""
    interactive = sys.stderr.isatty()
    last_printed = 0.0
    while True:
        jobs = admin.status(kind)
        job = jobs[0]
        line = progress_line(job)
        if interactive:
            sys.stderr.write("\r" + line.ljust(110))
            sys.stderr.flush()
        elif time.monotonic() - last_printed >= 5 or job.state != "running":
            print(line, file=sys.stderr)
            last_printed = time.monotonic()
        if job.state != "running":
            if interactive:
                sys.stderr.write("\n")
            if job.last_error:
                print(f"last error: {job.last_error}", file=sys.stderr)
            return 0 if job.state == "done" else 1
        time.sleep(_POLL_INTERVAL_S)


def _rotate(args) -> int:
    with _client(args) as admin:
        if args.target == "status":
            jobs = admin.status()
            if not jobs:
                print("no re-wrap job has run yet")
            for job in jobs:
                _print_job(job)
            return 0
        job = admin.rotate(args.target, args.batch_size, args.rate)
        active = admin.versions(args.target).active_version
        print(f"{args.target}: version {active} is active; re-wrap job {job.job_id} to version "
              f"{job.target_version} started ({job.rows_total} rows)")
        if args.no_wait:
            return 0
        return _follow(admin, args.target)


def _retire(args) -> int:
    with _client(args) as admin:
        reply = admin.retire(args.kind, args.version)
    if reply.state == "retired":
        print(f"{args.kind} version {args.version} is retired (proposed by {reply.proposed_by or '-'}, "
              f"approved by {reply.approved_by or '-'})")
    else:
        print(f"{args.kind} version {args.version}: retirement proposed by {reply.proposed_by}; "
              "a second security identity must run the same command to approve it")
    return 0


def _set_access(args, subject_kind: str, subject: str) -> int:
    with _client(args) as admin:
        result = admin.set_access(subject_kind, subject, disabled=not args.lift, reason=args.reason)
    action = "enabled" if args.lift else "disabled"
    print(f"{'server':10} {'result':10} detail")
    for server, rule in (("keystore", result.keystore), ("secret", result.secret)):
        if rule is not None:
            print(f"{server:10} {action:10} {subject_kind} {subject} ({rule.reason or 'no reason'})")
        else:
            print(f"{server:10} {'FAILED':10} {result.errors.get(server, '')}")
    if result.errors:
        print("the rule is not in place on every server; run the command again", file=sys.stderr)
        return 1
    return 0


def _revoke(args) -> int:
    if args.subject_kind == "list":
        with _client(args) as admin:
            rules = admin.list_access()
        print(f"{'server':10} {'kind':10} {'subject':48} {'state':9} reason")
        for server, items in rules.items():
            for rule in items:
                state = "disabled" if rule.disabled else "enabled"
                print(f"{server:10} {rule.subject_kind:10} {rule.subject:48} {state:9} {rule.reason}")
        return 0
    if not args.subject:
        raise SystemExit("splitkey revoke: give the record id or workspace id to revoke")
    return _set_access(args, args.subject_kind, args.subject)


def _deny(args) -> int:
    return _set_access(args, "identity", args.identity)


def _verify(args) -> int:
    with _client(args) as admin:
        report = admin.verify()
    print(f"{report.rows} rows")
    print(f"{'kek':6} {'version':>7} {'rows':>8} state")
    for item in report.versions:
        print(f"{item.kind:6} {item.version:>7} {item.rows:>8} {item.state}")
        for record_id in item.sample_record_ids:
            print(f"{'':24} unreadable: record {record_id}")
    if report.unreadable_rows:
        print(f"{report.unreadable_rows} rows reference a KEK version that a server no longer holds; "
              "they cannot be decrypted")
    if report.tampered_rows:
        print(f"{report.tampered_rows} rows fail their MAC: {', '.join(report.tampered_record_ids)}")
    return 1 if report.unreadable_rows or report.tampered_rows else 0


def _keystore_database(config_path: str) -> Path:
    from splitkey.config import load_keystore_config

    return load_keystore_config(config_path).database


def _backup(args) -> int:
    from keystore_server.backup import backup_database

    rows = backup_database(_keystore_database(args.config), Path(args.output))
    print(f"wrote {args.output}: {rows} records")
    return 0


def _restore(args) -> int:
    from keystore_server.backup import restore_database
    from splitkey.config import load_keystore_config
    from splitkey.errors import ConfigError
    from splitkey.pki.deployment import split_address

    config = load_keystore_config(args.config)
    host, port = split_address(config.listen)
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)) == 0:
            raise ConfigError(f"the keystore still listens on {config.listen}; stop it before restoring")
    rows = restore_database(Path(args.backup), config.database)
    print(f"restored {config.database} from {args.backup}: {rows} records; run 'splitkey verify' after starting")
    return 0


def register(subparsers) -> None:
    rotate = subparsers.add_parser("rotate", help="rotate KEK-A or KEK-B and re-wrap every row, or show progress")
    rotate.add_argument("target", choices=("kek-a", "kek-b", "status"))
    rotate.add_argument("--batch-size", type=int, default=0, metavar="ROWS",
                        help="rows per transaction, 1 to 256 (default: the server's, 64)")
    rotate.add_argument("--rate", type=int, default=0, metavar="ROWS_PER_S",
                        help="maximum rows re-wrapped per second (default: the server's, 2000)")
    rotate.add_argument("--no-wait", action="store_true", help="start the job and return without a progress bar")
    _add_client_option(rotate)
    rotate.set_defaults(func=_rotate)

    retire = subparsers.add_parser("retire", help="propose or approve retiring a KEK version no row uses")
    retire.add_argument("kind", choices=("kek-a", "kek-b"))
    retire.add_argument("version", type=int)
    _add_client_option(retire)
    retire.set_defaults(func=_retire)

    revoke = subparsers.add_parser("revoke", help="disable a record or a workspace on both servers, or list rules")
    revoke.add_argument("subject_kind", choices=("record", "workspace", "list"))
    revoke.add_argument("subject", nargs="?", default="", help="record id (32 hex digits) or workspace id")
    revoke.add_argument("--reason", default="", help="why; recorded on both servers (required unless --lift)")
    revoke.add_argument("--lift", action="store_true", help="enable the subject again")
    _add_client_option(revoke)
    revoke.set_defaults(func=_revoke)

    deny = subparsers.add_parser("deny", help="disable a worker identity on both servers")
    deny.add_argument("identity", help="the worker's SPIFFE URI, spiffe://<trust-domain>/worker/<name>")
    deny.add_argument("--reason", default="", help="why; recorded on both servers (required unless --lift)")
    deny.add_argument("--lift", action="store_true", help="allow the identity again")
    _add_client_option(deny)
    deny.set_defaults(func=_deny)

    verify = subparsers.add_parser("verify", help="report rows under a KEK version that a server no longer has")
    _add_client_option(verify)
    verify.set_defaults(func=_verify)

    backup = subparsers.add_parser("backup", help="copy the live keystore database (run on the keystore host)")
    backup.add_argument("--config", required=True, help="path to keystore.toml")
    backup.add_argument("--output", required=True, help="backup file to create; it must not exist")
    backup.set_defaults(func=_backup)

    restore = subparsers.add_parser("restore", help="replace the stopped keystore's database with a backup")
    restore.add_argument("--config", required=True, help="path to keystore.toml")
    restore.add_argument("backup", help="backup file written by 'splitkey backup'")
    restore.set_defaults(func=_restore)
