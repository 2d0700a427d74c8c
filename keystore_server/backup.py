"""Online backup and offline restore of the keystore's SQLite database.

Backup uses SQLite's online backup API, so it runs while the keystore serves
and copies one consistent snapshot. The copy is written to a temporary file
in the destination's folder, synced, then renamed into place.

Restore runs with the keystore stopped. It copies the backup to a temporary
file next to the database and syncs it; then it folds the current database's
WAL into the main file (journal_mode=DELETE), so that the current database is
complete on its own; only then does it rename the copy over the database. A
restore killed at any point leaves either the previous database or the
restored one, never a mix.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from splitkey.errors import ConfigError
from splitkey.pki.files import PRIVATE_FILE_MODE, fsync_directory

_logger = logging.getLogger(__name__)
# Pages copied per step of the backup API; between steps other connections may write.
_PAGES_PER_STEP = 1024


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _copy(source: Path, target: Path) -> None:
    """Copy `source` to a new file `target` with the backup API and fsync it."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    os.close(fd)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer, pages=_PAGES_PER_STEP)
        writer.execute("PRAGMA journal_mode=DELETE")
    finally:
        writer.close()
        reader.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_keystore_file(path: Path) -> int:
    """Return the record count of a keystore database file; raise ConfigError when it is not one."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise ConfigError(f"{path} fails SQLite's integrity check; use another backup")
            return connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path} is not a keystore database: {error}") from None


def backup_database(database: Path, destination: Path) -> int:
    """Write a consistent copy of a live keystore database to `destination`; return its record count."""
    database, destination = Path(database), Path(destination)
    if not database.exists():
        raise ConfigError(f"database {database} does not exist; check the keystore configuration")
    if destination.exists():
        raise ConfigError(f"backup file {destination} already exists; choose a new file name")
    temporary = _temporary(destination)
    try:
        _copy(database, temporary)
        rows = _check_keystore_file(temporary)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(destination.parent)
    _logger.info("backed up %s to %s (%d records)", database, destination, rows)
    return rows


def restore_database(backup: Path, database: Path) -> int:
    """Replace a stopped keystore's database with `backup`; return the restored record count."""
    backup, database = Path(backup), Path(database)
    _check_keystore_file(backup)
    temporary = _temporary(database)
    try:
        _copy(backup, temporary)
        rows = _check_keystore_file(temporary)
        if database.exists():
            current = sqlite3.connect(database, timeout=5)
            try:
                # Folds the WAL into the main file and deletes it, so the rename below
                # cannot pair the restored file with the old database's WAL.
                mode = current.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            except sqlite3.OperationalError as error:
                raise ConfigError(f"cannot take {database} out of WAL mode ({error}); stop the keystore first") from None
            finally:
                current.close()
            if mode != "delete":
                raise ConfigError(f"cannot take {database} out of WAL mode; is the keystore still running?")
        os.replace(temporary, database)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(database.parent)
    _logger.warning("restored %s from %s (%d records)", database, backup, rows)
    return rows
