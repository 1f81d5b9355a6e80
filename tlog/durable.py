"""Durable small-file writes in the data directory (the key, the published
checkpoint record).

A file appears under its final name only after its bytes are fsynced, and the
name change is fsynced in the directory: a crash at any point leaves either
the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """fsync a directory, making a rename or link in it durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, mode: int, *, replace: bool) -> bool:
    """Write ``data`` to ``path`` durably with permission ``mode`` (set at
    creation, never widened). With ``replace`` the file is swapped in
    atomically; without it an existing file is kept (``link`` never
    replaces, so two processes creating the same file race safely) and
    False is returned."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    created = True
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        created = False  # another process created it first: keep theirs
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return created
