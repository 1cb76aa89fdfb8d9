"""A daily build after the close, in the folder that built the day before, beside the same
build in a new folder: what keeping the historical episodes' contexts saves.

    python bench/daily_bench.py [--entities 5000] [--days 2520] [--repeat 3] [--market ID]

The prices file of day N holds the panel up to its N-th day (a file that grows by a day
each day). Each repeat builds day N-1 into a folder (which keeps the episodes' contexts),
then, alternating which goes first, day N into that folder and day N into a new one. Each
run is a fresh `stabfrag build` process (imports included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_probe, panel  # noqa: E402


def build(prices: Path, as_of: object, out: Path, market: str | None) -> dict[str, float]:
    """One `stabfrag build --as-of` process: its run summary's stage timings."""
    args = ["build", "--as-of", str(as_of), "--prices", str(prices), "--out", str(out)]
    res = subprocess.run(
        [sys.executable, "-m", "stabfrag", *args, "--json"]
        + (["--market", market] if market else []),
        capture_output=True,
        check=True,
        text=True,
    )
    timings: dict[str, float] = json.loads(res.stdout)["timings_s"]
    return timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=5000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--market", help="declare this entity the market (--market)")
    args = ap.parse_args()
    import polars as pl

    prices = pl.read_parquet(panel(args.entities, args.days) / "prices.parquet")
    before, today = prices["date"].unique().sort()[-2:]
    runs: dict[str, list[dict[str, float]]] = {"kept": [], "new folder": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for day in (before, today):
            files[day] = Path(tmp) / f"prices_{day}.parquet"
            prices.filter(pl.col("date") <= day).write_parquet(files[day])
        del prices
        for r in range(args.repeat):
            daily = Path(tmp) / f"daily{r}"
            build(files[before], before, daily, args.market)
            order = ["kept", "new folder"] if r % 2 == 0 else ["new folder", "kept"]
            for name in order:
                out = daily if name == "kept" else Path(tmp) / f"new{r}"
                runs[name].append(build(files[today], today, out, args.market))
    print(
        f"build --as-of {today} after {before}, {args.entities} entities, cpu probe "
        f"{cpu_probe():.2f} s"
    )
    print(f"{'':12} {'in run':>8} {'episode_contexts':>17}   (medians; runs)")
    medians = {}
    for name, got in runs.items():
        total = [sum(t.values()) for t in got]
        stage = [t.get("episode_contexts", 0.0) for t in got]
        medians[name] = statistics.median(total)
        print(
            f"{name:12} {medians[name]:8.2f} {statistics.median(stage):17.2f}   "
            + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(total, stage, strict=True))
        )
    print(f"kept / new folder: {medians['kept'] / medians['new folder']:.2f}x")


if __name__ == "__main__":
    main()
