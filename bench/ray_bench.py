"""The Ray executor beside the local one: the same backfill, the same run, on this machine.

    python bench/ray_bench.py [--entities 1000] [--days 2520] [--repeat 2]

Each configuration runs in a fresh process (so POLARS_MAX_THREADS takes effect and each
peak RSS is its own): the local executor on both cores and on one, then Ray with 1 and 2
workers (one entity block, and two). Ray's start is timed apart from the backfill. The
overhead of Ray per task is (Ray on 1 worker - local on 1 core) / tasks. Last, one
chunk's look-back read from the single prices file and from its yearly folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, panel, run_child  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
import datetime as dt
cfg = json.loads(sys.argv[1])
t0 = time.perf_counter()
start = 0.0
if cfg["executor"] == "ray":
    import ray
    ray.init(num_cpus=cfg["workers"], include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    start = time.perf_counter() - t0
from stabfrag.engine import loop
from stabfrag.engine.tasks import chunks
from stabfrag.config import BuildConfig
from stabfrag.engine.plan import backfill_plan
prices = Path(cfg["prices"])
dates = backfill_plan(prices, dt.date.fromisoformat(cfg["start"]),
                      dt.date.fromisoformat(cfg["end"]), freq=cfg["freq"],
                      chunk_days=cfg["chunk_days"]).dates
config = BuildConfig(prices=prices, out=Path(cfg["out"]), chunk_days=cfg["chunk_days"],
                     executor=cfg["executor"], entity_blocks=cfg["blocks"])
t1 = time.perf_counter()
s = loop.run(config, dates)
wall = time.perf_counter() - t1
tasks = len(list(chunks(dates, cfg["chunk_days"]))) * cfg["blocks"]
print(json.dumps({"wall": wall, "ray_start": start, "dates": len(dates),
                  "states": s.states_out, "tasks": tasks}))
"""

CONFIGS = [  # (label, executor, workers / Polars threads, entity blocks)
    ("local, 2 cores", "local", 2, 1),
    ("local, 1 core", "local", 1, 1),
    ("ray, 1 worker", "ray", 1, 1),
    ("ray, 2 workers", "ray", 2, 1),
    ("ray, 2 workers, 2 blocks", "ray", 2, 2),
]


def job(script: Path, cfg: dict, repeat: int) -> tuple[dict, float]:
    runs, rss = [], 0.0
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(dir=OUT))
        env = {"POLARS_MAX_THREADS": str(cfg["workers"])} if cfg["executor"] == "local" else {}
        result, peak = run_child([str(script), json.dumps({**cfg, "out": str(out)})], env)
        runs.append(result)
        rss = max(rss, peak)
        shutil.rmtree(out)
    best = dict(runs[0])
    for key in ("wall", "ray_start"):
        best[key] = statistics.median(r[key] for r in runs)
    return best, rss


def read_once(prices: Path, first: dt.date, last: dt.date, repeat: int) -> float:
    from stabfrag.engine.states import READ_ROWS
    from stabfrag.ingest.window import read_window

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        read_window(prices, first=first, last=last, include_undated=False, min_rows=READ_ROWS)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seal_cost(blocks: int, dates: int) -> float:
    """Median seconds for the driver to seal one date of `blocks` staged blocks (tiny
    files: the renames, manifests and clean-up, not the bytes)."""
    import polars as pl

    from stabfrag.sinks.base import Partition
    from stabfrag.sinks.blocks import block_manifest_path, seal
    from stabfrag.sinks.parquet import ParquetSink

    out = Path(tempfile.mkdtemp(dir=OUT))
    tables = {t: pl.DataFrame() for t in ("joint_embeddings", "features", "rejects")}
    days = [dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in range(dates)]
    for b in range(blocks):
        with ParquetSink(out, block=b) as sink:
            for day in days:
                sink.write(Partition(day, tables, {"block": b}))
            sink.commit()
    times = []
    for day in days:
        paths = [block_manifest_path(out, day, b) for b in range(blocks)]
        manifests = [json.loads(path.read_text()) for path in paths]
        t0 = time.perf_counter()
        seal(out, day, manifests, {"as_of_date": day.isoformat()})
        times.append(time.perf_counter() - t0)
    shutil.rmtree(out)
    return statistics.median(times)


def print_seals() -> None:
    for blocks in (1, 10, 50):
        print(f"seal of one date in {blocks} blocks: {seal_cost(blocks, 20) * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seal-only", action="store_true", help="only the sealing figures")
    args = ap.parse_args()
    if args.seal_only:
        print_seals()
        return
    prices = panel(args.entities, args.days) / "prices.parquet"
    import polars as pl

    span = pl.scan_parquet(prices).select(pl.min("date").alias("a"), pl.max("date").alias("b"))
    first, last = span.collect().row(0)
    script = Path(tempfile.mkdtemp()) / "child.py"
    script.write_text(CHILD)
    jobs = {
        "month-end backfill, all dates, chunks of 183 days": dict(
            start=str(first), end=str(last), freq="month", chunk_days=183
        ),
        "daily backfill, last year, chunks of 61 days": dict(
            start=str(last - dt.timedelta(days=364)), end=str(last), freq="day", chunk_days=61
        ),
    }
    print(f"panel {args.entities} x {args.days}, median of {args.repeat} runs per figure")
    for name, spec in jobs.items():
        print(f"\n{name}")
        print(
            f"{'executor':26} {'wall s':>7} {'x local':>8} {'ray start':>10} {'tasks':>6} "
            f"{'states/s':>9} {'RSS MB':>7}"
        )
        base: dict[str, float] = {}
        for label, executor, workers, blocks in CONFIGS:
            cfg = {
                **spec,
                "prices": str(prices),
                "executor": executor,
                "workers": workers,
                "blocks": blocks,
            }
            res, rss = job(script, cfg, args.repeat)
            base.setdefault("local", res["wall"])
            if label == "local, 1 core":
                base["local1"] = res["wall"]
            if label == "ray, 1 worker":
                per_task = (res["wall"] - base["local1"]) / res["tasks"]
                per_date = (res["wall"] - base["local1"]) / res["dates"]
            print(
                f"{label:26} {res['wall']:7.2f} {res['wall'] / base['local']:8.2f} "
                f"{res['ray_start']:10.2f} {res['tasks']:6d} "
                f"{res['states'] / res['wall']:9,.0f} {rss:7.0f}"
            )
        print(
            f"Ray overhead on 1 worker vs local on 1 core: {per_task:.2f} s per task, "
            f"{per_date * 1000:.0f} ms per date"
        )

    folder = OUT / f"prices_by_year_{args.entities}x{args.days}"
    if not folder.exists():
        from stabfrag.ingest.partition import partition_prices

        partition_prices(prices, folder)
    chunk_first = last - dt.timedelta(days=182)
    single = read_once(prices, chunk_first, last, 5)
    years = read_once(folder, chunk_first, last, 5)
    print(
        f"\nlook-back read of the last 183-day chunk: one file {single:.2f} s, "
        f"yearly folder {years:.2f} s ({single / years:.1f}x)"
    )


if __name__ == "__main__":
    main()
