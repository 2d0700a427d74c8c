"""`splitkey audit ...`: verify, query, export, reconcile and report the servers' audit logs (auditor role).

    splitkey audit export --server keystore|secret [-o FILE]    JSON Lines
    splitkey audit verify [EXPORT [PEER_EXPORT]] [--pin FILE]    offline, or both servers over RPC
    splitkey audit query [filters] [--json]                      one or both servers, or an export
    splitkey audit reconcile [--keystore-export F --secret-export F] [--json]
    splitkey audit report -o FILE [--keystore-export F --secret-export F]
    splitkey audit prune --server keystore|secret --export FILE [--pin FILE]    security role

Without export files, each command reads the live logs with the auditor's
client configuration (--config, $SPLITKEY_CLIENT_CONFIG, or
.splitkey-dev/client-auditor.toml). Prune uses a security identity instead
(.splitkey-dev/client-security.toml by default).
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import asdict
from pathlib import Path

from client.cli.client_config import add_config_option, client_config_path
from client.cli.output import format_ms, print_json, print_table
from splitkey.errors import InvalidInputError

SERVER_CHOICES = ("keystore", "secret")


def _audit_client(args):
    from client.audit_client import AuditClient

    return AuditClient.from_config(client_config_path(args, "auditor"))


def _parse_time_ms(text: str | None) -> int | None:
    """Return Unix ms of an ISO 8601 date or time; a time without a zone is UTC."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"time {text!r} is invalid; use ISO 8601, such as 2026-05-01 or 2026-05-01T12:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def _live_logs(args) -> dict:
    """Read both servers' logs over RPC and return {"keystore": ExportedLog, "secret": ExportedLog}."""
    with _audit_client(args) as client:
        return client.export_both()


def _pair_sources(args) -> dict:
    """Return the keystore and secret logs from export files, or live when neither file is given."""
    from splitkey.audit.export import load_export

    files = {"keystore": args.keystore_export, "secret": args.secret_export}
    if not any(files.values()):
        return _live_logs(args)
    missing = [f"--{server}-export" for server, path in files.items() if not path]
    if missing:
        raise InvalidInputError(f"pass both export files, or neither to read the live logs; missing {missing[0]}")
    return {server: load_export(Path(path)) for server, path in files.items()}


# export ----------------------------------------------------------------------

def _export(args) -> int:
    from splitkey.audit.export import export_jsonl

    with _audit_client(args) as client:
        exported = client.export(args.server)
    if args.output == "-":
        lines = export_jsonl(exported, sys.stdout)
    else:
        lines = export_jsonl(exported, Path(args.output))
        print(f"exported {len(exported.entries)} entries and {len(exported.checkpoints)} checkpoints "
              f"of {exported.server_id} to {args.output}", file=sys.stderr)
    return 0 if lines else 1


# verify ----------------------------------------------------------------------

def verify_logs(logs: list, pins: dict) -> list:
    """Verify each exported log, with the other one (if given) as its peer; return the reports.

    A pinned log is checked against its pinned key and head. Without a pin,
    the key named in the export is trusted on first use.
    """
    from splitkey.audit.verify import verify_export

    reports = []
    for index, log in enumerate(logs):
        peer = logs[1 - index] if len(logs) == 2 else None
        pin = pins.get(log.server_id)
        peer_pin = pins.get(peer.server_id) if peer is not None else None
        peer_key = None
        if peer is not None:
            peer_key = peer_pin.public_key if peer_pin else peer.public_key
        reports.append(verify_export(
            log,
            public_key_hex=pin.public_key if pin else None,
            pinned_head=pin.head if pin else None,
            peer_public_key_hex=peer_key,
            peer_export=peer,
            peer_heads=[peer_pin.head] if peer_pin else (),
        ))
    return reports


def _newest_head(log):
    return max(log.checkpoints, key=lambda head: head.seq, default=None)


def _verify(args) -> int:
    from splitkey.audit.export import load_export
    from splitkey.audit.pins import Pin, load_pins, save_pins

    if len(args.exports) > 2:
        raise InvalidInputError("pass at most two export files: a log and the other server's log")
    if args.exports:
        logs = [load_export(Path(path)) for path in args.exports]
    else:
        logs = list(_live_logs(args).values())
    pins = load_pins(Path(args.pin)) if args.pin else {}
    reports = verify_logs(logs, pins)
    ok = all(report.ok for report in reports)

    if args.json:
        print_json([
            {
                "server_id": report.server_id, "ok": report.ok, "first_bad_seq": report.first_bad_seq,
                "first_seq": report.first_seq, "last_seq": report.last_seq,
                "checkpoints_checked": report.checkpoints_checked,
                "witnessed_heads_checked": report.witnessed_heads_checked,
                "pinned_seq": pins[report.server_id].head.seq if report.server_id in pins else None,
                "problems": [asdict(problem) for problem in report.problems],
            }
            for report in reports
        ])
    else:
        for report in reports:
            print(report)
            if report.server_id in pins:
                print(f"  checked against the pinned head at seq {pins[report.server_id].head.seq}")

    if ok and args.pin:
        for log, report in zip(logs, reports):
            head = _newest_head(log)
            if head is not None:
                pins[log.server_id] = Pin(report.public_key, head)
        save_pins(Path(args.pin), pins)
        if not args.json:
            print(f"pinned the newest verified heads in {args.pin}")
    return 0 if ok else 1


# query -----------------------------------------------------------------------

_COLUMNS = ["server", "seq", "time", "actor", "action", "outcome", "workspace", "record", "request_id", "count",
            "reason"]


def _matches(entry, filters: dict) -> bool:
    if filters.get("start_ms") is not None and entry.time_ms < filters["start_ms"]:
        return False
    if filters.get("end_ms") is not None and entry.time_ms >= filters["end_ms"]:
        return False
    for name in ("workspace", "record_id", "actor", "action", "outcome"):
        if filters.get(name) is not None and getattr(entry, name) != filters[name]:
            return False
    return True


def _query(args) -> int:
    from splitkey.audit.export import load_export

    filters = {
        "start_ms": _parse_time_ms(args.since),
        "end_ms": _parse_time_ms(args.until),
        "workspace": args.workspace,
        "record_id": args.record,
        "actor": args.actor,
        "action": args.action,
        "outcome": args.outcome,
    }
    entries = []
    if args.export:
        for path in args.export:
            matched = [e for e in load_export(Path(path)).entries if _matches(e, filters)]
            entries.extend(matched[: args.limit] if args.limit else matched)
    else:
        servers = SERVER_CHOICES if args.server == "both" else (args.server,)
        with _audit_client(args) as client:
            for server in servers:
                entries.extend(client.entries(server, limit=args.limit, **filters))
    entries.sort(key=lambda e: (e.time_ms, e.server_id, e.seq))

    if args.json:
        print_json([entry.to_dict() for entry in entries])
        return 0
    rows = [
        [e.server_id, e.seq, format_ms(e.time_ms), e.actor or "-", e.action, e.outcome, e.workspace or "-",
         e.record_id or "-", e.request_id or "-", e.count, e.reason or "-"]
        for e in entries
    ]
    print_table(_COLUMNS, rows)
    return 0


# reconcile and report ----------------------------------------------------------

def _reconcile(args) -> int:
    from splitkey.audit.reconcile import reconcile

    logs = _pair_sources(args)
    result = reconcile(logs["keystore"], logs["secret"], burst_limit=args.burst_limit,
                       burst_window_s=args.burst_window)
    if args.json:
        print_json({
            "uses_matched": result.uses_matched,
            "counts": result.counts(),
            "findings": [asdict(finding) for finding in result.findings],
        })
    else:
        print(f"uses matched on both servers: {result.uses_matched}")
        rows = [
            [f.severity, f.kind, f.server_id, f.seq, format_ms(f.time_ms), f.actor or "-", f.workspace or "-",
             f.request_id or "-", f.count, f.message]
            for f in result.findings
        ]
        print_table(["severity", "kind", "server", "seq", "time", "actor", "workspace", "request_id", "count",
                     "message"], rows)
    return 1 if any(f.severity == "high" for f in result.findings) else 0


def _report(args) -> int:
    from splitkey.audit.reconcile import reconcile
    from splitkey.audit.report import write_report

    logs = _pair_sources(args)
    findings = reconcile(logs["keystore"], logs["secret"], burst_limit=args.burst_limit,
                         burst_window_s=args.burst_window)
    path = write_report(Path(args.output), logs["keystore"], logs["secret"], findings=findings)
    print(f"wrote {path} ({len(findings.findings)} findings, {findings.uses_matched} uses matched)")
    return 0


# prune -----------------------------------------------------------------------

def _prune(args) -> int:
    from client.audit_client import AuditClient
    from splitkey.audit.export import load_export
    from splitkey.audit.pins import Pin, load_pins, save_pins

    exported = load_export(Path(args.export))
    pins = load_pins(Path(args.pin)) if args.pin else {}
    if args.pin and exported.server_id not in pins:
        raise InvalidInputError(
            f"pin file {args.pin} has no pinned head for {exported.server_id!r}; "
            "run 'splitkey audit verify --pin' on that log first, or prune without --pin"
        )
    (report,) = verify_logs([exported], pins)
    print(report)
    if not report.ok:
        print(f"prune rejected: {args.export} failed verification, so nothing was sent to the server; "
              "export the log again and verify it", file=sys.stderr)
        return 1
    checkpoint = _newest_head(exported)
    if checkpoint is None:
        print(f"prune rejected: {args.export} contains no signed checkpoint to prune up to", file=sys.stderr)
        return 1

    with AuditClient.from_config(client_config_path(args, "security")) as client:
        result = client.prune(args.server, checkpoint, (exported.anchor_seq, exported.anchor_hash))
    if result.pruned:
        print(f"pruned {result.pruned} entries of {exported.server_id}, recorded as entry {result.prune_seq}")
    else:
        print(f"pruned nothing: the log of {exported.server_id} already starts after seq {result.anchor_seq}")
    print(f"new anchor: seq {result.anchor_seq}, hash {result.anchor_hash}")
    if args.pin:
        # The pruned checkpoint is now the anchor, so a later verify checks the anchor against it.
        pins[exported.server_id] = Pin(report.public_key, checkpoint)
        save_pins(Path(args.pin), pins)
        print(f"pinned checkpoint seq {checkpoint.seq} of {exported.server_id} in {args.pin}")
    return 0


# registration ------------------------------------------------------------------

def _add_config(parser) -> None:
    add_config_option(parser, "auditor")


def _add_pair_sources(parser) -> None:
    parser.add_argument("--keystore-export", metavar="FILE", help="the keystore's JSON Lines export (default: read live)")
    parser.add_argument("--secret-export", metavar="FILE", help="the secret server's JSON Lines export (default: read live)")
    parser.add_argument("--burst-limit", type=int, default=30, metavar="N",
                        help="flag more than N decryptions by one actor in one workspace within the window (default: 30)")
    parser.add_argument("--burst-window", type=float, default=60.0, metavar="SECONDS",
                        help="length of the burst window in seconds (default: 60)")


def register(subparsers) -> None:
    audit = subparsers.add_parser("audit", help="verify, query, export, reconcile and report the audit logs")
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    export = commands.add_parser("export", help="write one server's whole log as JSON Lines")
    export.add_argument("--server", choices=SERVER_CHOICES, required=True, help="whose log to export")
    export.add_argument("-o", "--output", default="-", metavar="FILE", help="output file (default: - for stdout)")
    _add_config(export)
    export.set_defaults(func=_export)

    verify = commands.add_parser(
        "verify", help="check hash chain, signatures, gaps, witnessed heads, and truncation against a pin"
    )
    verify.add_argument("exports", nargs="*", metavar="EXPORT",
                        help="one or two JSON Lines exports (a log and the other server's); none reads both live")
    verify.add_argument("--pin", metavar="FILE",
                        help="pin file: check against the key and head pinned there, and pin the newest heads "
                             "when every check passes")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_config(verify)
    verify.set_defaults(func=_verify)

    query = commands.add_parser("query", help="list entries that match filters")
    query.add_argument("--server", choices=(*SERVER_CHOICES, "both"), default="both", help="whose log (default: both)")
    query.add_argument("--export", action="append", metavar="FILE", help="query an export file instead (repeatable)")
    query.add_argument("--since", metavar="TIME", help="entries at or after this ISO 8601 time (UTC unless a zone is given)")
    query.add_argument("--until", metavar="TIME", help="entries before this ISO 8601 time")
    query.add_argument("--workspace")
    query.add_argument("--record", metavar="RECORD_ID")
    query.add_argument("--actor", metavar="SPIFFE_ID")
    query.add_argument("--action", metavar="METHOD", help="RPC method name, such as FetchKey, or genesis or witness")
    query.add_argument("--outcome", choices=("allowed", "denied", "error"))
    query.add_argument("--limit", type=int, default=0, metavar="N", help="entries per log at most (default: 0, no limit)")
    query.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_config(query)
    query.set_defaults(func=_query)

    reconcile = commands.add_parser(
        "reconcile",
        help="join both logs on (request id, identity, context hash) and list findings; exit 1 on a high one",
    )
    _add_pair_sources(reconcile)
    reconcile.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_config(reconcile)
    reconcile.set_defaults(func=_reconcile)

    report = commands.add_parser("report", help="write a self-contained HTML report with charts and findings")
    report.add_argument("-o", "--output", required=True, metavar="FILE", help="HTML file to write")
    _add_pair_sources(report)
    _add_config(report)
    report.set_defaults(func=_report)

    prune = commands.add_parser(
        "prune",
        help="verify an export offline, then delete the server's entries up to its newest checkpoint "
             "(security role)",
    )
    prune.add_argument("--server", choices=SERVER_CHOICES, required=True, help="whose log to prune")
    prune.add_argument("--export", required=True, metavar="FILE",
                       help="JSON Lines export of that log, from 'splitkey audit export'; entries up to its "
                            "newest checkpoint are deleted")
    prune.add_argument("--pin", metavar="FILE",
                       help="pin file: check the export against the key and head pinned there, and pin the "
                            "pruned checkpoint after the prune")
    add_config_option(prune, "security")
    prune.set_defaults(func=_prune)
