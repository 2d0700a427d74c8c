"""Reads and compare-and-swap writes of key records for the re-wrap jobs.

Rows are read with every column of RecordRow, whatever columns the table
gains later. A re-wrapped row is written only if its row_version is still the
one that was read, so a record replaced, removed or re-wrapped concurrently
is never overwritten.
"""

from __future__ import annotations

import dataclasses

from keystore_server.rows import RecordRow

ROW_COLUMNS = tuple(field.name for field in dataclasses.fields(RecordRow))
_SELECT = f"SELECT {', '.join(ROW_COLUMNS)} FROM records"
# Columns a re-wrap changes; everything else of the row stays as it was.
_REWRAP_UPDATE = (
    "UPDATE records SET wrap_a = ?, wrap_b = ?, kek_a_version = ?, kek_b_version = ?, row_version = ?, mac = ? "
    "WHERE record_id = ? AND row_version = ?"
)
VERSION_COLUMNS = {"kek-a": "kek_a_version", "kek-b": "kek_b_version"}


def to_row(sqlite_row) -> RecordRow:
    return RecordRow(**{name: sqlite_row[name] for name in ROW_COLUMNS})


def next_batch(connection, kind: str, target: int, after: str, limit: int) -> list[RecordRow]:
    """Rows of any status not yet under `target`, in record_id order after `after`."""
    column = VERSION_COLUMNS[kind]
    found = connection.execute(
        f"{_SELECT} WHERE {column} != ? AND record_id > ? ORDER BY record_id LIMIT ?", (target, after, limit)
    ).fetchall()
    return [to_row(item) for item in found]


def count_not_at(connection, kind: str, target: int) -> int:
    column = VERSION_COLUMNS[kind]
    return connection.execute(f"SELECT COUNT(*) FROM records WHERE {column} != ?", (target,)).fetchone()[0]


def rows_using(connection, kind: str, version: int, limit: int = 20) -> tuple[int, list[tuple[str, str]]]:
    """Return how many rows use a KEK version and up to `limit` (record_id, workspace) pairs of them."""
    column = VERSION_COLUMNS[kind]
    total = connection.execute(f"SELECT COUNT(*) FROM records WHERE {column} = ?", (version,)).fetchone()[0]
    sample = connection.execute(
        f"SELECT record_id, workspace FROM records WHERE {column} = ? ORDER BY record_id LIMIT ?", (version, limit)
    ).fetchall()
    return total, [(item["record_id"], item["workspace"]) for item in sample]


def version_counts(connection, kind: str) -> dict[int, int]:
    column = VERSION_COLUMNS[kind]
    return {
        item[0]: item[1]
        for item in connection.execute(f"SELECT {column}, COUNT(*) FROM records GROUP BY {column}").fetchall()
    }


def swap(connection, old: RecordRow, new: RecordRow) -> bool:
    """Write `new` over `old` if the stored row_version is still old's; return whether it was written."""
    cursor = connection.execute(
        _REWRAP_UPDATE,
        (new.wrap_a, new.wrap_b, new.kek_a_version, new.kek_b_version, new.row_version, new.mac,
         old.record_id, old.row_version),
    )
    return cursor.rowcount == 1


def all_rows(connection, after: str, limit: int) -> list[RecordRow]:
    found = connection.execute(f"{_SELECT} WHERE record_id > ? ORDER BY record_id LIMIT ?", (after, limit)).fetchall()
    return [to_row(item) for item in found]
