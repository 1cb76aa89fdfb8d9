"""`build --as-of` end to end on the reference panel, by stage, beside a whole-file read.

    python bench/build_bench.py [--entities 5000] [--days 2520] [--repeat 5] [--market ID]

Each run is a fresh `stabfrag build` process (imports included). The baseline is the
same process reading the whole prices file without a date predicate: what the build
would pay without predicate pushdown, before doing any work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import panel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=5000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--market", help="declare this entity the market (--market)")
    args = ap.parse_args()
    folder = panel(args.entities, args.days)
    prices = folder / "prices.parquet"
    import polars as pl

    as_of = pl.scan_parquet(prices).select(pl.col("date").max()).collect().item()
    walls, stages = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "stabfrag",
                    "build",
                    "--as-of",
                    str(as_of),
                    "--prices",
                    str(prices),
                    "--entities",
                    str(folder / "entities.parquet"),
                    "--out",
                    out,
                    "--json",
                    *(["--market", args.market] if args.market else []),
                ],
                capture_output=True,
                check=True,
                text=True,
            )
            walls.append(time.perf_counter() - t0)
            stages.append(json.loads(res.stdout))
    full_read = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", f"import polars as pl; pl.read_parquet({str(prices)!r})"],
            check=True,
        )
        full_read.append(time.perf_counter() - t0)
    s = stages[-1]
    print(
        f"build --as-of {as_of}: {s['states_out']:,} states, {s['scenario_rows']} scenarios, "
        f"{s['rows_read']:,} of {pl.scan_parquet(prices).select(pl.len()).collect().item():,} "
        "price rows read"
    )
    total = statistics.median(walls)
    print(
        f"wall (process, imports included): median {total:.2f} s, runs "
        + ", ".join(f"{w:.2f}" for w in walls)
    )
    names = list(s["timings_s"])
    inside = statistics.median(sum(x["timings_s"].values()) for x in stages)
    print(f"{'stage':16} {'median s':>9} {'share':>7}")
    for name in names:
        med = statistics.median(x["timings_s"][name] for x in stages)
        print(f"{name:16} {med:9.3f} {med / inside:7.1%}")
    print(f"{'(in run)':16} {inside:9.3f}")
    print(
        f"baseline: a process that only reads the whole prices file: median "
        f"{statistics.median(full_read):.2f} s "
        f"({statistics.median(full_read) / total:.2f}x the build)"
    )


if __name__ == "__main__":
    main()
