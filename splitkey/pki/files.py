"""Atomic, permission-aware writes of small files (keys, keyrings, configs).

A reader sees either the old content or the new content, never a partial
file: data goes to a temporary file in the same folder, is fsynced, renamed
over the target, and the folder is fsynced so that the rename survives a
crash. The temporary file gets its final mode before any byte is written, so
private content is never readable by others, even briefly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
PRIVATE_DIR_MODE = 0o700


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a folder's entries (renames, new files) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(directory: Path, data: bytes, mode: int) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def write_atomically(path: str | os.PathLike, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace `path` with `data` atomically; the file ends up with `mode`."""
    target = Path(path)
    temporary = _write_temporary(target.parent, data, mode)
    try:
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def create_atomically(path: str | os.PathLike, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Create `path` with `data` atomically; raise FileExistsError if it exists.

    The complete temporary file is hard-linked to the target name, which fails
    when the name is taken, so two concurrent creators cannot both succeed.
    """
    target = Path(path)
    temporary = _write_temporary(target.parent, data, mode)
    try:
        os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(target.parent)


def make_private_directory(path: str | os.PathLike) -> Path:
    """Create a folder (and missing parents) and set it to mode 0700."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, PRIVATE_DIR_MODE)
    return directory
