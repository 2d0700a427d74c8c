"""Export of an audit log as JSON Lines, and loading of such an export.

Line 1 is a header (`"type": "header"`) with the server id, public key and
anchor (seq and hash of the entry before the first exported one). Then one
line per entry (`"type": "entry"`) and one per signed head
(`"type": "checkpoint"`). An export of a live log is read in one SQLite read
transaction, so its entries and checkpoints are consistent with each other.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from splitkey.audit.entry import GENESIS_ACTION, ZERO_HASH, AuditEntry
from splitkey.audit.head import SignedHead
from splitkey.audit.log import AuditLog
from splitkey.audit.store import entry_from_row, head_from_row, open_reader, read_meta
from splitkey.errors import InvalidInputError

EXPORT_FORMAT = "splitkey-audit-export-v1"


@dataclass
class ExportedLog:
    """An export loaded into memory; `parse_errors` lists (line number, message)."""

    server_id: str
    public_key: str
    anchor_seq: int
    anchor_hash: str
    entries: list[AuditEntry] = field(default_factory=list)
    checkpoints: list[SignedHead] = field(default_factory=list)
    parse_errors: list[tuple[int, str]] = field(default_factory=list)


def export_jsonl(
    log_or_entries: AuditLog | ExportedLog | Iterable[AuditEntry | SignedHead],
    file: Path | str | TextIO,
) -> int:
    """Write a log, a loaded export, or entries and heads as JSON Lines; return the line count.

    For bare entries and heads the header is derived: server id from the first
    entry, public key from a genesis entry, anchor seq 0.
    """
    if isinstance(file, (str, Path)):
        with open(file, "w", encoding="utf-8") as stream:
            return export_jsonl(log_or_entries, stream)

    if isinstance(log_or_entries, AuditLog):
        connection = open_reader(log_or_entries.path)
        try:
            connection.execute("BEGIN")
            meta = read_meta(connection)
            header = _header(meta["server_id"], meta["public_key"], int(meta["anchor_seq"]), meta["anchor_hash"])
            entries = (entry_from_row(r) for r in connection.execute("SELECT * FROM entries ORDER BY seq"))
            heads = [head_from_row(r) for r in connection.execute("SELECT * FROM checkpoints ORDER BY seq")]
            return _write_lines(file, header, entries, heads)
        finally:
            connection.close()

    if isinstance(log_or_entries, ExportedLog):
        exported = log_or_entries
        header = _header(exported.server_id, exported.public_key, exported.anchor_seq, exported.anchor_hash)
        return _write_lines(file, header, exported.entries, exported.checkpoints)

    items = list(log_or_entries)
    entries_only = [item for item in items if isinstance(item, AuditEntry)]
    heads_only = [item for item in items if isinstance(item, SignedHead)]
    if len(entries_only) + len(heads_only) != len(items):
        raise InvalidInputError("export_jsonl takes AuditEntry and SignedHead items only")
    server_id = ""
    if entries_only:
        server_id = entries_only[0].server_id
    elif heads_only:
        server_id = heads_only[0].server_id
    public_key = next((e.public_key for e in entries_only if e.action == GENESIS_ACTION), "")
    return _write_lines(file, _header(server_id, public_key, 0, ZERO_HASH), entries_only, heads_only)


def load_export(source: Path | str | TextIO | ExportedLog) -> ExportedLog:
    """Parse an export; malformed lines are collected in `parse_errors`, not raised."""
    # NOTE: the whole export is loaded into memory. Verify very large logs in
    # pruned segments until a streaming verifier exists.
    if isinstance(source, ExportedLog):
        return source
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8") as stream:
            return load_export(stream)
    return _parse_lines(source)


def dumps_export(log_or_entries: AuditLog | ExportedLog | Iterable[AuditEntry | SignedHead]) -> str:
    """Return the JSON Lines export as a string."""
    buffer = io.StringIO()
    export_jsonl(log_or_entries, buffer)
    return buffer.getvalue()


def _header(server_id: str, public_key: str, anchor_seq: int, anchor_hash: str) -> dict[str, object]:
    return {
        "type": "header",
        "format": EXPORT_FORMAT,
        "server_id": server_id,
        "public_key": public_key,
        "anchor_seq": anchor_seq,
        "anchor_hash": anchor_hash,
    }


def _write_lines(
    stream: TextIO, header: dict[str, object], entries: Iterable[AuditEntry], heads: Iterable[SignedHead]
) -> int:
    lines = 1
    stream.write(json.dumps(header, sort_keys=True) + "\n")
    for entry in entries:
        stream.write(json.dumps({"type": "entry", **entry.to_dict()}, sort_keys=True) + "\n")
        lines += 1
    for head in heads:
        stream.write(json.dumps({"type": "checkpoint", **head.to_dict()}, sort_keys=True) + "\n")
        lines += 1
    return lines


def _parse_lines(lines: Iterable[str]) -> ExportedLog:
    exported = ExportedLog(server_id="", public_key="", anchor_seq=0, anchor_hash=ZERO_HASH)
    seen_header = False
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.rstrip("\n")
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            kind = item.pop("type") if isinstance(item, dict) else None
            if kind == "header" and not seen_header and number == 1:
                _read_header(item, exported)
                seen_header = True
            elif kind == "entry":
                exported.entries.append(AuditEntry.from_dict(item))
            elif kind == "checkpoint":
                exported.checkpoints.append(SignedHead.from_dict(item))
            else:
                exported.parse_errors.append((number, f"unexpected line type {kind!r}"))
        except (ValueError, KeyError, TypeError, InvalidInputError) as error:
            exported.parse_errors.append((number, f"malformed line: {error}"))
    if not seen_header:
        exported.parse_errors.append((1, "the export has no header line"))
    return exported


def _read_header(item: dict[str, object], exported: ExportedLog) -> None:
    if item.get("format") != EXPORT_FORMAT:
        raise ValueError(f"unknown export format {item.get('format')!r}, expected {EXPORT_FORMAT}")
    server_id, public_key = item["server_id"], item["public_key"]
    anchor_seq, anchor_hash = item["anchor_seq"], item["anchor_hash"]
    if not isinstance(server_id, str) or not isinstance(public_key, str) or not isinstance(anchor_hash, str):
        raise ValueError("header fields server_id, public_key and anchor_hash must be strings")
    if type(anchor_seq) is not int or anchor_seq < 0:
        raise ValueError("header field anchor_seq must be a non-negative int")
    exported.server_id = server_id
    exported.public_key = public_key
    exported.anchor_seq = anchor_seq
    exported.anchor_hash = anchor_hash
