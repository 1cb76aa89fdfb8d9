"""What kind of file an input is, its columns, and a hash of its bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from stabfrag.errors import InputError


def file_format(path: Path) -> str:
    """'parquet' or 'csv', judged by magic bytes then suffix; InputError otherwise."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
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
        raise InputError(path, f"cannot read: {str(exc).splitlines()[0]}") from None


def check_columns(path: Path, names: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(path, f"missing required column(s): {', '.join(missing)}")


def file_hash(path: Path | None) -> str | None:
    """blake2b of a file's bytes (None for no file): what a partition was made from."""
    if path is None:
        return None
    file_format(path)  # a missing file or a folder is one line, not an OSError
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
