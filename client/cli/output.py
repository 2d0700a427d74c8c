"""Output of operators' commands: aligned tables, or JSON with --json."""

from __future__ import annotations

import datetime
import json
import sys


def print_table(headers: list[str], rows: list[list[object]], out=sys.stdout) -> None:
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]
    out.write("  ".join(header.upper().ljust(width) for header, width in zip(headers, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() + "\n")


def print_json(value: object, out=sys.stdout) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def format_ms(unix_ms: int) -> str:
    """Unix milliseconds as UTC ISO time to the second, or "never" for 0."""
    if not unix_ms:
        return "never"
    moment = datetime.datetime.fromtimestamp(unix_ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
