"""Month-end backfill of the reference panel for two chunk sizes, a daily rate, real data.

    python bench/backfill_bench.py [--entities 5000] [--days 2520] [--chunks 366,1830]
        [--real "$ETF_PRICES"]

Each backfill runs as its own process, so its peak RSS is its own. The baseline is the
same dates built one `build --as-of` process at a time (timed on a sample of dates and
scaled to all of them): what a user would do without backfill.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import panel, run_child  # noqa: E402


def backfill(args: list[str]) -> tuple[dict, float, float]:
    """Run one backfill in a child; return its JSON summary, wall seconds and peak RSS MiB."""
    script = Path(tempfile.mkdtemp()) / "child.py"
    script.write_text(
        "import sys, json, io, contextlib, time\n"
        "from stabfrag.cli import app\n"
        "buf = io.StringIO()\n"
        "t0 = time.perf_counter()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        app(sys.argv[1:], standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "s = json.loads(buf.getvalue())\n"
        "s['wall_s'] = time.perf_counter() - t0\n"
        # The child's own high-water mark: the parent's rusage of a child also counts the
        # pages the child had from the parent before exec (a bench that holds 3 GB of
        # tables would make every later child look 3 GB large).
        "try:\n"
        "    with open('/proc/self/status') as fh:\n"
        "        hwm = next(line for line in fh if line.startswith('VmHWM'))\n"
        "    s['peak_mib'] = int(hwm.split()[1]) / 1024\n"
        "except (OSError, StopIteration):\n"
        "    pass\n"
        "print(json.dumps(s))\n"
    )
    summary, rss = run_child([str(script), *args])
    return summary, summary["wall_s"], summary.get("peak_mib", rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=5000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--chunks", default="366,1830")
    ap.add_argument("--real", type=Path)
    args = ap.parse_args()
    folder = panel(args.entities, args.days)
    prices = folder / "prices.parquet"
    import polars as pl

    first, last = (
        pl.scan_parquet(prices)
        .select(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
        .collect()
        .row(0)
    )
    print(f"panel {args.entities} x {args.days}: {first} to {last}")
    print(
        f"{'run':34} {'dates':>6} {'states':>9} {'wall s':>8} {'states/s':>10} {'peak RSS MB':>12}"
    )
    for chunk in [int(c) for c in args.chunks.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            s, wall, rss = backfill(
                [
                    "backfill",
                    "--start",
                    str(first),
                    "--end",
                    str(last),
                    "--freq",
                    "month",
                    "--prices",
                    str(prices),
                    "--out",
                    out,
                    "--chunk-days",
                    str(chunk),
                    "--json",
                ]
            )
        print(
            f"{'month-end, --chunk-days ' + str(chunk):34} {s['partitions_written']:6} "
            f"{s['states_out']:9,} {wall:8.1f} {s['states_out'] / wall:10,.0f} {rss:12.0f}"
        )
    year = last.replace(year=last.year - 1)
    with tempfile.TemporaryDirectory() as out:
        s, wall, rss = backfill(
            [
                "backfill",
                "--start",
                str(year),
                "--end",
                str(last),
                "--freq",
                "day",
                "--prices",
                str(prices),
                "--out",
                out,
                "--chunk-days",
                "92",
                "--json",
            ]
        )
    print(
        f"{'daily, last year, --chunk-days 92':34} {s['partitions_written']:6} "
        f"{s['states_out']:9,} {wall:8.1f} {s['states_out'] / wall:10,.0f} {rss:12.0f}"
    )
    # Baseline: one build process per date, on a sample of month-ends.
    import subprocess

    dates = [
        str(d)
        for d in pl.scan_parquet(prices)
        .select(pl.col("date").unique())
        .collect()
        .sort("date")["date"]
        .to_list()[-1::-250][:4]
    ]
    walls = []
    for d in dates:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "stabfrag",
                    "build",
                    "--as-of",
                    d,
                    "--prices",
                    str(prices),
                    "--out",
                    out,
                ],
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
    per = statistics.median(walls)
    print(
        f"baseline: one build process per date, median {per:.2f} s per date "
        f"(x120 month-ends = {per * 120:.0f} s)"
    )
    if args.real and args.real.exists():
        rf, rl = (
            pl.scan_parquet(args.real)
            .select(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
            .collect()
            .row(0)
        )
        with tempfile.TemporaryDirectory() as out:
            s, wall, rss = backfill(
                [
                    "backfill",
                    "--start",
                    str(rf),
                    "--end",
                    str(rl),
                    "--freq",
                    "month",
                    "--prices",
                    str(args.real),
                    "--out",
                    out,
                    "--max-reject-share",
                    "1",
                    "--json",
                ]
            )
        print(
            f"\nreal ETF panel {args.real.name}: {s['partitions_written']} month-ends, "
            f"{s['states_out']:,} states in {wall:.1f} s ({s['states_out'] / wall:,.0f}/s), "
            f"peak RSS {rss:.0f} MB"
        )
        print(
            f"rows read {s['rows_read']:,}; row rejects by reason: "
            + json.dumps(s["row_rejects_by_reason"])
            + f"; range dropped {s['range_dropped']:,}"
        )
        print(
            "entity rejects (entity x as-of date) by reason: "
            + json.dumps(s["entity_rejects_by_reason"])
        )


if __name__ == "__main__":
    main()
