"""The Parquet dataset: Hive partitions by as-of date, each file written under a temporary
name and renamed, the partition's manifest last."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from stabfrag.schema import TABLE_SCHEMAS, conform
from stabfrag.sinks import Partition, SinkBase

MANIFEST = "_manifest.json"
PART = "part-0.parquet"


def partition_dir(out: Path, table: str, as_of: dt.date) -> Path:
    return out / table / f"as_of_date={as_of.isoformat()}"


def manifest_path(out: Path, as_of: dt.date) -> Path:
    return partition_dir(out, "joint_embeddings", as_of) / MANIFEST


def read_manifest(out: Path, as_of: dt.date) -> dict[str, Any] | None:
    path = manifest_path(out, as_of)
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except json.JSONDecodeError:
        return None


class ParquetSink(SinkBase):
    """Stage every table of a partition as temporary files; commit renames them into place."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.staged: list[tuple[Path, Path]] = []

    def write(self, partition: Partition) -> None:
        # A new write invalidates the old manifest first: a crash mid-way must not leave
        # an old manifest vouching for a mix of old and new files.
        manifest_path(self.out, partition.as_of).unlink(missing_ok=True)
        for table, frame in partition.tables.items():
            final = partition_dir(self.out, table, partition.as_of) / PART
            final.parent.mkdir(parents=True, exist_ok=True)
            # Temporary files of a run that was killed mid-write are garbage now.
            for stale in final.parent.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
            conform(frame, TABLE_SCHEMAS[table]).write_parquet(
                tmp, compression="zstd", statistics=True
            )
            self.staged.append((tmp, final))
        manifest = json.dumps(partition.manifest, indent=2, sort_keys=True, default=str)
        final = manifest_path(self.out, partition.as_of)
        tmp = final.with_name(f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(manifest + "\n")
        self.staged.append((tmp, final))

    def commit(self) -> None:
        for tmp, final in self.staged:  # the manifest was staged last, so it lands last
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        self.staged.clear()
        self.committed = True

    def rollback(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()


def partitions(out: Path, table: str = "joint_embeddings") -> list[dt.date]:
    """The as-of dates with a committed file for `table`, ascending."""
    root = out / table
    if not root.is_dir():
        return []
    dates = [
        dt.date.fromisoformat(p.name.split("=", 1)[1])
        for p in root.glob("as_of_date=*")
        if (p / PART).exists()
    ]
    return sorted(dates)


def read_table(out: Path, table: str, as_of: dt.date) -> pl.DataFrame:
    return pl.read_parquet(partition_dir(out, table, as_of) / PART)
