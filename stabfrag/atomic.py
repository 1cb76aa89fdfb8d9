"""Atomic file writes: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stabfrag.errors import ConfigError


def temp_name(path: Path) -> Path:
    """A hidden, unique sibling of `path` to write before the rename."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to disk (before the rename that publishes it)."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def fsync_replace(tmp: Path, path: Path) -> None:
    """Flush `tmp` to disk, then rename it over `path`: a reader sees old or new, whole."""
    fsync_file(tmp)
    os.replace(tmp, path)


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` then rename tmp to `path`: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        write(tmp)
        fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def make_folder(path: Path, option: str = "--out") -> Path:
    """Create the output folder `path` (and its parents), or refuse in one line: a file of
    that name, a parent that is a file, a read-only or full file system."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; the output is a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the folder ({exc.strerror})") from None
    return path
