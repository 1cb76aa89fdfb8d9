"""Atomic file writes: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stabfrag.errors import ConfigError, RunError


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


def writable_folder(path: Path, option: str) -> Path:
    """make_folder, and refuse in one line a folder no file can be written in (read-only,
    a system folder): an output named on the command line fails before the work."""
    make_folder(path, option)
    probe = temp_name(path / "probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write there ({exc.strerror})") from None
    return path


def writable_file(path: Path, option: str) -> Path:
    """`path`, an output file named on the command line, once its folder is writable."""
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: {path.parent} is a file, not a folder")
    writable_folder(path.parent, option)
    return path


LOCK_NAME = ".stabfrag.lock"


@contextlib.contextmanager
def folder_lock(folder: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold `folder`'s writer lock while the block runs: one writer at a time (two once
    deleted each other's temporary files). An advisory lock on a file in the folder: the
    system drops it when the process ends, however it ends. A second writer is refused,
    naming the holder, or with `wait` waits its turn. Readers take no lock."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown"
            raise RunError(
                f"--out {folder} is being written by another run (process {holder}); run "
                "again when it ends, or pass --wait"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # (closing the file releases the lock)
