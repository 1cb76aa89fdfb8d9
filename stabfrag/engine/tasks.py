"""A run as tasks: (chunk of dates x entity block), each built and staged on its own.

A task runs the chunk builder on its entity block and stages its files with the usual
temporary-file, rename, manifest-last scheme (sinks.blocks); it returns a few timings,
never frames, unless it ran in the driver's own process. The run loop (engine.run) seals a
date when every block of it is staged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stabfrag.engine.chunk import Chunk, ChunkBuilder
from stabfrag.engine.entity_blocks import EntityBlock
from stabfrag.engine.manifest import RunIdentity
from stabfrag.engine.summary import Timings
from stabfrag.sinks.base import Partition
from stabfrag.sinks.parquet import ParquetSink

LOG = logging.getLogger("stabfrag.tasks")

# A plug-in point run in the worker before each task (tests inject faults with it).
BeforeTask = Callable[[Chunk], None]


@dataclass
class TaskResult:
    """What a task tells the driver: its timings, whether the entities file matched, and
    (when it ran in the driver's process) its partitions, for the sinks after Parquet."""

    timings: dict[str, float]
    entities_matched: bool
    parts: list[Partition] = field(default_factory=list)


def run_task(
    builder: ChunkBuilder,
    identity: RunIdentity,
    task: Chunk,
    *,
    keep: bool = False,
    contexts: Any = None,
) -> TaskResult:
    """Build the task's chunk and stage its block of each date; `keep`: return the parts;
    `contexts`: each date's context, computed over every entity beforehand."""
    timings = Timings()
    builder.entities_matched = False
    built = builder.build(task, timings, contexts)
    parts = [
        Partition(
            d.as_of,
            d.tables,
            identity.staged(d.as_of, task.block, d.counts, d.tally),
            finite_checked=True,
        )
        for d in built
    ]
    del built
    with (
        timings.stage("write_parquet"),
        ParquetSink(identity.config.out, block=task.block.index) as sink,
    ):
        for part in parts:
            sink.write(part)
        sink.commit()
    steps = ", ".join(f"{k} {v:.2f}s" for k, v in timings.seconds.items())
    LOG.debug("%s: %d dates built and staged (%s)", task.describe(), len(parts), steps)
    return TaskResult(timings.seconds, builder.entities_matched, parts if keep else [])


def plan_tasks(
    dates: list[dt.date],
    missing: dict[dt.date, set[int]],
    blocks: list[EntityBlock],
    chunk_days: int,
) -> list[Chunk]:
    """Per block, chunks of the dates that block still lacks (a chunk's dates need not be
    consecutive dates of the run: each date's output depends only on its own look-back).
    `dates` are all the run's dates, ascending; `missing` the blocks each date to build
    lacks."""
    previous = {d: (dates[i - 1] if i else None) for i, d in enumerate(dates)}
    out = []
    for block in blocks:
        todo = [d for d in dates if block.index in missing.get(d, ())]
        for span in chunks(todo, chunk_days):  # bounded memory per chunk
            out.append(Chunk(span, previous[span[0]], block))
    return out


def chunks(dates: list[dt.date], span_days: int) -> Iterator[list[dt.date]]:
    """Consecutive runs of dates whose calendar span stays within span_days."""
    chunk: list[dt.date] = []
    for d in dates:
        if chunk and (d - chunk[0]).days >= span_days:
            yield chunk
            chunk = []
        chunk.append(d)
    if chunk:
        yield chunk
