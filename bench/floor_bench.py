"""A job beside its I/O floor: the same run's time to read the prices it needs and write
its outputs with the same library and compression, doing no other work.

    python bench/floor_bench.py [--entities 1000] [--days 2520] [--repeat 3] [--pandas]

Jobs: the month-end backfill of the whole panel, the daily backfill of its last calendar
year, and `build --as-of` its last date, each in a fresh process (timed inside it, so
interpreter start-up is out of every job), with its states a second and its largest
peak RSS over the runs. The floor
of a job reads the prices file it read (every row and column, one `read_parquet`) and
writes the partitions it wrote (the same tables, rows, files, zstd and statistics),
from memory, with no manifests, renames or fsync: what no implementation can skip.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill_bench import backfill  # noqa: E402
from common import cpu_probe, panel  # noqa: E402

from stabfrag.sinks.dataset import (  # noqa: E402
    PART,
    TABLE_SCHEMAS,
    WRITE_OPTIONS,
    partition_dir,
    partitions,
)


def floor(prices: Path, out: Path, repeat: int) -> tuple[float, float, float, int]:
    """(median read s, median write s, their sum, files) for the outputs in `out`."""
    tables = {
        (table, day): pl.read_parquet(partition_dir(out, table, day) / PART)
        for table in TABLE_SCHEMAS
        for day in partitions(out)
        if (partition_dir(out, table, day) / PART).exists()
    }
    reads, writes = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pl.read_parquet(prices)
        reads.append(time.perf_counter() - t0)
        target = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        for (table, day), frame in tables.items():  # one file per partition, as the job
            path = partition_dir(target, table, day) / PART
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(path, **WRITE_OPTIONS)
        writes.append(time.perf_counter() - t0)
        shutil.rmtree(target)
    read, write = statistics.median(reads), statistics.median(writes)
    return read, write, read + write, len(tables)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--pandas",
        action="store_true",
        help="also time a pandas feature script beside the month-end backfill",
    )
    args = ap.parse_args()
    prices = panel(args.entities, args.days) / "prices.parquet"
    first, last = (
        pl.scan_parquet(prices)
        .select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b"))
        .collect()
        .row(0)
    )
    jobs = {
        "month-end backfill": ["backfill", "--start", str(first), "--end", str(last)]
        + ["--freq", "month", "--chunk-days", "1830"],
        "daily backfill, last year": ["backfill", "--start", str(last.replace(month=1, day=1))]
        + ["--end", str(last), "--freq", "day"],
        "build --as-of (last date)": ["build", "--as-of", str(last)],
    }
    print(f"panel {args.entities} x {args.days}, median of {args.repeat} runs per figure")
    print(f"cpu probe {cpu_probe():.2f} s (bench/common.py: lower is a faster machine)")
    print(
        f"{'job':28} {'job s':>7} {'read s':>7} {'write s':>8} {'floor s':>8} "
        f"{'files':>6} {'x floor':>8} {'states/s':>9} {'peak MiB':>8}"
    )
    for name, cli in jobs.items():
        walls, peaks = [], []
        for _ in range(args.repeat):
            out = Path(tempfile.mkdtemp())
            summary, wall, rss = backfill(
                [*cli, "--prices", str(prices), "--out", str(out), "--json"]
            )
            walls.append(wall)
            peaks.append(rss)
            if len(walls) < args.repeat:
                shutil.rmtree(out)
        read, write, total, files = floor(prices, out, args.repeat)
        shutil.rmtree(out)
        job = statistics.median(walls)
        rate = summary["states_out"] / job
        print(
            f"{name:28} {job:7.2f} {read:7.2f} {write:8.2f} {total:8.2f} {files:6} "
            f"{job / total:8.1f} {rate:9,.0f} {max(peaks):8,.0f}"
        )
        if args.pandas and name == "month-end backfill":
            for label, paths in (("every feature", True), ("no path features", False)):
                runs = [pandas_month_ends(prices, paths=paths) for _ in range(args.repeat)]
                script = statistics.median(runs)
                print(
                    f"{'  pandas, ' + label:28} {script:7.2f}  (the backfill is "
                    f"{script / job:.1f}x faster)"
                )
    print(f"cpu probe {cpu_probe():.2f} s at the end")


def pandas_month_ends(prices: Path, *, paths: bool) -> float:
    """Seconds for a plain pandas script: read the file, the features of every row by
    `groupby().rolling()` (bench/pandas_features.py, with or without the two path
    features that call Python per window), then keep each entity's last row of every
    month. It does less than the backfill: no validation, encoding or writes."""
    from pandas_features import features

    t0 = time.perf_counter()
    frame = pd.read_parquet(prices)
    frame["date"] = pd.to_datetime(frame["date"])
    frame = frame.sort_values(["entity_id", "date"], ignore_index=True)
    out = features(frame, paths=paths)
    month = out["date"].dt.to_period("M")
    out.groupby([out["entity_id"], month], sort=False).tail(1)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
