"""Shared bench helpers: cached panels, medians, per-child peak RSS."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def panel(entities: int, days: int, seed: int = 7) -> Path:
    """The synthetic panel of that size, generated once and cached under bench/out."""
    folder = OUT / f"panel_{entities}x{days}_s{seed}"
    if not (folder / "prices.parquet").exists():
        from stabfrag import synth

        synth.write_market(synth.generate(entities=entities, days=days, seed=seed), folder)
    return folder


def cpu_probe() -> float:
    """Seconds for a fixed pure-Python loop (the sum of 30 million integers): how fast
    this shared machine is running now. Printed beside a bench's figures, it tells a
    slow stretch from a slower program when runs of different days are compared."""
    t0 = time.perf_counter()
    sum(range(30_000_000))
    return time.perf_counter() - t0


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Median wall seconds of `repeat` runs, every run's time, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """Run `python args...` that prints one JSON line; return it and the child's peak RSS (MB)."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(args)}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, default=str) + "\n")
