"""The output folder's layout: Hive partitions by as-of date, one schema per table, and the
partition manifest that says a date is complete."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from stabfrag.errors import InputError
from stabfrag.features.registry import FEATURES_TABLE_SCHEMA
from stabfrag.schema import JOINT_SCHEMA, REJECTS_TABLE_SCHEMA, SCENARIOS_TABLE_SCHEMA

MANIFEST = "_manifest.json"
PART = "part-0.parquet"  # the first (with one entity block, the only) file of a partition
PART_GLOB = "part-*.parquet"  # a partition built in K entity blocks holds part-0 .. part-{K-1}

# How every partition file is written. zstd level 1 writes the same size as the default
# level on these tables (float32 vectors barely compress) in about 0.7x the time.
WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "statistics": True}

# Every partition of a table has exactly this schema (declared once, here).
TABLE_SCHEMAS: dict[str, pl.Schema] = {
    "joint_embeddings": JOINT_SCHEMA,
    "features": FEATURES_TABLE_SCHEMA,
    "rejects": REJECTS_TABLE_SCHEMA,
    "scenarios": SCENARIOS_TABLE_SCHEMA,
}


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


def partitions(out: Path, table: str = "joint_embeddings") -> list[dt.date]:
    """The committed as-of dates of `table` (the file and the date's manifest in place),
    ascending; a folder whose name is no date (one copied aside, as_of_date=....bak) is
    not a partition."""
    root = out / table
    if not root.is_dir():
        return []
    dates = []
    for folder in root.glob("as_of_date=*"):
        try:
            day = dt.date.fromisoformat(folder.name.split("=", 1)[1])
        except ValueError:
            continue
        if (folder / PART).exists() and manifest_path(out, day).exists():
            dates.append(day)
    return sorted(dates)


def part_name(block: int) -> str:
    return f"part-{block}.parquet"


def part_files(folder: Path) -> list[Path]:
    """The part files of one partition folder, in block order (part-10 after part-9)."""
    found = []
    for path in folder.glob(PART_GLOB):
        number = path.name[len("part-") : -len(".parquet")]
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def read_table(out: Path, table: str, as_of: dt.date) -> pl.DataFrame:
    """One partition of a table: its part files in block order, as one frame."""
    return read_tables(out, table, [as_of])


def read_tables(
    out: Path, table: str, dates: list[dt.date], *, columns: list[str] | None = None
) -> pl.DataFrame:
    """The partitions of `dates` of one table, in date order, as one frame: one scan of the
    files (only `columns` read when given), not one read per date."""
    if not dates:
        return pl.DataFrame(schema=TABLE_SCHEMAS[table]).select(columns or pl.all())
    check_sizes(out, table, dates)
    paths = [p for d in dates for p in part_files(partition_dir(out, table, d))]
    scan = pl.scan_parquet(paths)
    return (scan if columns is None else scan.select(columns)).collect()


def file_check(path: Path) -> dict[str, Any]:
    """What a manifest records of a file: its size and its sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def damage(
    out: Path, manifest: dict[str, Any], *, checksums: bool = False, table: str | None = None
) -> list[tuple[str, str]]:
    """The files a date's manifest vouches for (those of `table` only, when given) that are
    not as it says: (file, what is wrong). Sizes always; the bytes too with `checksums`. A
    manifest written before files were checked vouches for none: it says so once."""
    checks = manifest.get("file_checks")
    if not isinstance(checks, dict):
        return [("", "the manifest records no file sizes (built by an older stabfrag)")]
    found = []
    for name, check in sorted(checks.items()):
        if table is not None and not name.startswith(f"{table}/"):
            continue
        path = out / name
        if not path.is_file():
            found.append((name, "missing"))
        elif path.stat().st_size != check.get("bytes"):
            found.append(
                (
                    name,
                    f"size {path.stat().st_size:,} bytes, the manifest says {check.get('bytes'):,}",
                )
            )
        elif checksums and file_check(path)["sha256"] != check.get("sha256"):
            found.append((name, "checksum differs from the manifest's"))
    return found


def problems(out: Path, *, checksums: bool = True) -> tuple[int, list[tuple[str, str, str]]]:
    """(intact dates, every problem as (date, file, what)) of an output folder: files not
    as their date's manifest says (size, checksum), files no manifest names, partition
    folders of a date without a manifest."""
    days: set[str] = set()
    for table in TABLE_SCHEMAS:
        root = out / table
        if root.is_dir():
            days |= {f.name.removeprefix("as_of_date=") for f in root.glob("as_of_date=*")}
    intact, found = 0, []
    for text in sorted(days):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            continue  # a folder copied aside (as_of_date=....bak) is no partition
        manifest = read_manifest(out, day)
        if manifest is None:
            found += [
                (text, str(partition_dir(out, table, day).relative_to(out)), "no manifest")
                for table in TABLE_SCHEMAS
                if part_files(partition_dir(out, table, day))
            ]
            continue
        named = set(manifest.get("file_checks") or {})
        wrong = [(text, f, what) for f, what in damage(out, manifest, checksums=checksums)]
        stray = [
            (text, str(p.relative_to(out)), "not in the manifest")
            for table in TABLE_SCHEMAS
            for p in part_files(partition_dir(out, table, day))
            if named and str(p.relative_to(out)) not in named
        ]
        found += wrong + stray
        intact += not (wrong or stray)
    return intact, found


def check_sizes(out: Path, table: str, dates: list[dt.date]) -> None:
    """Refuse, naming it, a file of `table` on `dates` whose size is not its manifest's."""
    for day in dates:
        manifest = read_manifest(out, day)
        if manifest is None or "file_checks" not in manifest:
            continue
        for name, what in damage(out, manifest, table=table):
            raise InputError(
                out / name,
                f"damaged ({what}); stabfrag verify --out {out} lists such files, "
                "backfill --resume rebuilds",
            )


def unvouched(out: Path, table: str = "joint_embeddings") -> int:
    """Date folders of `table` that no manifest vouches for (a build that did not finish)."""
    root = out / table
    folders = [f for f in root.glob("as_of_date=????-??-??") if f.is_dir()] if root.is_dir() else []
    return sum(not (f / MANIFEST).exists() for f in folders)
