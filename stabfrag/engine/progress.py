"""Progress: a rich bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

LOG = logging.getLogger("stabfrag.progress")  # (stabfrag.logs)
ProgressFn = Callable[[int, int, int], None]  # (dates done, dates total, states so far)


@contextmanager
def reporter() -> Iterator[ProgressFn]:
    """Yield a callback(done, total, states) that shows as-of dates done, states/s and ETA:
    a bar on a terminal (drawn from the first call, which knows the total), a log line
    per call elsewhere; nothing for a run of one date."""
    t0 = time.perf_counter()
    with ExitStack() as stack:
        bar: dict[str, Any] = {}

        def update(done: int, total: int, states: int) -> None:
            if total <= 1:  # a single date needs no progress
                return
            elapsed = max(time.perf_counter() - t0, 1e-9)
            if not sys.stderr.isatty() or not LOG.isEnabledFor(logging.INFO):
                eta = elapsed / done * (total - done) if done else 0.0
                LOG.info(
                    "%s/%s as-of dates, %s states, %s states/s, eta %.0fs",
                    f"{done:,}",
                    f"{total:,}",
                    f"{states:,}",
                    f"{states / elapsed:,.0f}",
                    eta,
                )
                return
            if not bar:
                bar["progress"] = stack.enter_context(_bar())
                bar["task"] = bar["progress"].add_task("dates", total=total, rate="")
            rate = f"{states / elapsed:,.0f} states/s"
            bar["progress"].update(bar["task"], completed=done, rate=rate)

        yield update


def _bar() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("as-of dates"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        transient=True,
    )
