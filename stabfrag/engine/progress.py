"""Progress: a rich bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressFn = Callable[[int, int, int], None]  # (dates done, dates total, states so far)


@contextmanager
def reporter(total: int) -> Iterator[ProgressFn]:
    """Yield a callback(done, total, states) that shows as-of dates done, states/s and ETA."""
    t0 = time.perf_counter()
    if sys.stderr.isatty() and total > 1:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("as-of dates"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("dates", total=total, rate="")

            def update(done: int, _total: int, states: int) -> None:
                rate = states / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=done, rate=f"{rate:,.0f} states/s")

            yield update
        return

    def log(done: int, total_: int, states: int) -> None:
        if total_ <= 1:  # a single date needs no progress line
            return
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total_ - done) if done else 0.0
        sys.stderr.write(
            f"stabfrag: {done:,}/{total_:,} as-of dates, {states:,} states, "
            f"{states / max(elapsed, 1e-9):,.0f} states/s, eta {eta:.0f}s\n"
        )

    yield log
