"""What kind of file an input is, its columns, and a hash of its bytes."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import polars as pl

from stabfrag.errors import InputError, first_line


def folder_files(path: Path) -> list[Path]:
    """The Parquet files of a folder input (Hive-partitioned or not), in path order; an
    InputError when it holds none."""
    files = sorted(
        f for f in path.rglob("*.parquet") if not any(p.startswith(".") for p in f.parts[-2:])
    )
    if not files:
        raise InputError(path, "is a folder without Parquet files")
    return files


def file_format(path: Path, *, folder: bool = False) -> str:
    """'parquet' or 'csv', judged by magic bytes then suffix, or 'folder' (of Parquet
    files) where a folder is accepted; InputError otherwise."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        if folder:
            folder_files(path)
            return "folder"
        raise InputError(path, "is a folder, expected a Parquet or CSV file")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet"
    if path.suffix.lower() in {".parquet", ".pq"}:
        raise InputError(path, "not a Parquet file (no PAR1 magic bytes)")
    if path.suffix.lower() in {".csv", ".txt"}:
        return "csv"
    raise InputError(path, "unknown format: expected a .parquet or .csv file")


def read_frame(path: Path) -> pl.DataFrame:
    """A small side file (entities, labels) read whole; CSV columns stay text."""
    fmt = file_format(path)
    try:
        return pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise InputError(path, f"cannot read: {first_line(exc)}") from None


def check_columns(path: Path, names: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(path, f"missing required column(s): {', '.join(missing)}")


def file_hash(path: Path | None) -> str | None:
    """blake2b of a file's bytes (None for no file): what a partition was made from."""
    if path is None:
        return None
    # A missing file is one line, not an OSError; a folder of Parquet files hashes its files.
    files = folder_files(path) if file_format(path, folder=True) == "folder" else [path]
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_files(path, stamp)


@functools.lru_cache(maxsize=16)
def _hash_files(path: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """The hash of files whose names, sizes and times are `stamp`: a run hashes its input
    once however many places record it (a changed file has another stamp)."""
    files = [Path(name) for name, _, _ in stamp]
    h = hashlib.blake2b(digest_size=16)
    for name in files:
        if name != path:
            h.update(str(name.relative_to(path)).encode() + b"\0")
        with name.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
