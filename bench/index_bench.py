"""The analog index on a built history: build rate, memory, query time and recall@10
against exact search with the same point-in-time filters, on the same queries.

    python bench/index_bench.py --out HISTORY [--build] [--queries 200] [--exact 50]
    python bench/index_bench.py --out HISTORY --compare   # the libraries side by side

HISTORY is a folder a daily backfill wrote (bench/README.md says how the 10M-state one
was made). Each query is a state of the later three quarters of the history, searched
among every other entity's states of dates at least 180 days before it (and, a second
set, among every state strictly before its date). Exact search is the scan of the same
stored float32 vectors (the index's fallback), so the two differ only by the index.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_probe, emit, run_child  # noqa: E402

from stabfrag.index import store  # noqa: E402
from stabfrag.index.search import AnalogIndex, last_eligible  # noqa: E402

K = 10


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def build_child(out: str) -> None:
    """In a child process: a full build with fresh training; prints seconds and peak RSS."""
    from stabfrag.index.build import build_index

    t0 = time.perf_counter()
    summary = build_index(Path(out), update=False, retrain=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    emit({"seconds": seconds, "states": summary["states"], "peak_mb": peak, **summary})


def queries(index: AnalogIndex, n: int, seed: int = 0) -> list[tuple[np.ndarray, dt.date, str]]:
    """n states of the later three quarters of the history: (vector, as_of, entity)."""
    first = len(index.keys) // 4
    rows = np.random.default_rng(seed).choice(len(index.keys) - first, n, replace=False) + first
    picked = []
    for row in sorted(rows):
        key = index.keys.row(int(row), named=True)
        vector = index.vector_of(key["entity_id"], key["as_of_date"])
        assert vector is not None
        picked.append((vector, key["as_of_date"], key["entity_id"]))
    return picked


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def pairs(frame: Any) -> set[tuple[Any, Any]]:
    return set(zip(frame["as_of_date"], frame["entity_id"], strict=True))


def measure(index: AnalogIndex, picked: list[Any], exact_n: int, gap: int, others: bool) -> dict:
    """Query times of the index on every query (after 50 untimed ones: the pages of a
    long-running process), then exact search's times and recall@10 on the first
    `exact_n` (a separate pass: a scan of every vector would evict the index's pages)."""
    asked = [(v, last_eligible(day, gap), entity if others else None) for v, day, entity in picked]
    for vector, last, exclude in asked[:50]:
        index.search(vector, last, exclude, K)
    ann_s, found = [], []
    for vector, last, exclude in asked:
        seconds, got = timed(index.search, vector, last, exclude, K)
        ann_s.append(seconds)
        found.append(got)
    exact_s, recalls = [], []
    for (vector, last, exclude), got in list(zip(asked, found, strict=True))[:exact_n]:
        cut, own = index.eligible(last, exclude)
        seconds, want = timed(index.scan, vector, cut, own, K)
        exact_s.append(seconds)
        if len(want):
            recalls.append(len(pairs(got) & pairs(want)) / len(want))
    return {
        "filter": f"{'other entities' if others else 'every entity'}, >= {max(gap, 1)} days before",
        "queries": len(picked),
        "index_p50_ms": 1e3 * float(np.median(ann_s)),
        "index_p99_ms": 1e3 * float(np.percentile(ann_s, 99)),
        "exact_queries": len(exact_s),
        "exact_p50_ms": 1e3 * float(np.median(exact_s)) if exact_s else None,
        "recall_at_10": float(np.mean(recalls)) if recalls else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--build", action="store_true", help="time a full build first")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact", type=int, default=50)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--child-build", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_build:
        build_child(args.child_build)
        return
    emit({"cpu_probe_s": cpu_probe()})
    if args.build:
        result, peak = run_child([__file__, "--out", str(args.out), "--child-build", str(args.out)])
        emit({**result, "states_per_s": result["states"] / result["seconds"], "rss_mb": peak})
    before = rss_mb()
    seconds, index = timed(AnalogIndex.open, args.out)
    assert index is not None and index.valid_before is None, "build a fresh index first"
    lists_bytes = index.lists.ntotal * (index.lists.code_size + 8)
    emit(
        {
            "open_s": seconds,
            "states": index.manifest["states"],
            "lists": index.manifest["params"]["lists"],
            "rss_added_mb": rss_mb() - before,
            "codes_and_ids_mb": lists_bytes / 2**20,
            "segments_on_disk_gb": sum(
                p.stat().st_size for p in (store.index_dir(args.out) / store.SEGMENTS).iterdir()
            )
            / 2**30,
        }
    )
    picked = queries(index, args.queries)
    emit(measure(index, picked, args.exact, gap=180, others=True))
    emit(measure(index, picked, args.exact, gap=0, others=False))
    if args.compare:
        from compare_ann import compare

        compare(index, picked, args.exact)


if __name__ == "__main__":
    main()
