"""A backfill as tasks: (chunk of dates x entity block), run by workers.

Each task runs the one-process chunk builder on its entity block and stages its files with
the usual temporary-file, rename, manifest-last scheme (sinks.blocks); it returns only a
few timings, never frames. The driver seals a date when every block of it is staged and
counts the run from the block manifests, so the summary is the one a one-process run
prints. Where the tasks run is a backend (engine.ray_executor: Ray, on this machine or a
cluster).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any, Protocol

from stabfrag.allocator import tune_allocator
from stabfrag.config import BuildConfig
from stabfrag.engine.builder import Builder, chunks
from stabfrag.engine.entity_blocks import EntityBlock
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.errors import RunError, StabfragError
from stabfrag.sinks.blocks import clear_staging, seal, staged_block
from stabfrag.sinks.parquet import ParquetSink

# Test hook: "DATE:BLOCK:TIMES:DIR" makes the task of the chunk starting on DATE, block
# BLOCK (from 0), lose its worker on its first TIMES attempts (counted by files in DIR).
FAULT_ENV = "STABFRAG_FAULT"


@dataclasses.dataclass(frozen=True)
class Task:
    dates: list[dt.date]
    previous: dict[dt.date, dt.date | None]
    first_of_run: bool
    block: EntityBlock

    def describe(self) -> str:
        return f"chunk {self.dates[0]}..{self.dates[-1]}, {self.block.describe()}"


def block_identity(builder: Builder, block: EntityBlock) -> dict[str, Any]:
    """What a staged block must match to be reused by --resume."""
    return {
        "input_fingerprint": builder.fingerprint,
        "models": builder.models.hashes(),
        "block": block.index,
        "blocks": block.count,
        "bounds": [block.lo, block.hi],
    }


_BUILDERS: dict[str, Builder] = {}  # per worker process: models and library load once


def build_block(config: BuildConfig, task: Task, fault: str | None) -> dict[str, Any]:
    """One task: build the block's partitions of the chunk and stage them."""
    tune_allocator()  # a Ray worker is its own process: the CLI's setting is not here
    _maybe_fail(fault, task)
    key = repr(config)
    builder = _BUILDERS.get(key)
    if builder is None:
        builder = _BUILDERS[key] = Builder(config)
    builder.summary = RunSummary(out=str(config.out))  # this task's timings only
    builder.entities_matched = False
    parts = builder.build_chunk(
        task.dates, task.previous, first_of_run=task.first_of_run, block=task.block
    )
    identity = block_identity(builder, task.block)
    with (
        builder.summary.timings.stage("write_parquet"),
        ParquetSink(config.out, block=task.block.index) as sink,
    ):
        for part in parts:
            counts = part.manifest["counts"]
            manifest = {"as_of_date": part.as_of.isoformat(), **identity, "counts": counts}
            sink.write(dataclasses.replace(part, manifest={**manifest, "tally": part.tally}))
        sink.commit()
    return {
        "timings": builder.summary.timings.seconds,
        "entities_matched": builder.entities_matched,
    }


def _maybe_fail(fault: str | None, task: Task) -> None:
    if not fault:
        return
    day, block, times, folder = fault.split(":", 3)
    if task.dates[0].isoformat() != day or task.block.index != int(block):
        return
    marks = Path(folder)
    marks.mkdir(parents=True, exist_ok=True)
    done = len(list(marks.glob("attempt-*")))
    if done < int(times):
        (marks / f"attempt-{done}").touch()
        os._exit(1)  # the worker dies mid-task, as a lost node would


def _tasks(
    todo: list[dt.date],
    previous: dict[dt.date, dt.date | None],
    first: dt.date,
    missing: dict[dt.date, set[int]],
    blocks: list[EntityBlock],
    chunk_days: int,
) -> list[Task]:
    """Per block, chunks of the dates that block still lacks (a chunk's dates need not be
    consecutive dates of the run: each date's output depends only on its own look-back)."""
    out = []
    for block in blocks:
        dates = [d for d in todo if block.index in missing[d]]
        for chunk in chunks(dates, chunk_days):
            prev = {d: previous[d] for d in chunk}
            out.append(Task(chunk, prev, chunk[0] == first, block))
    return out


class Backend(Protocol):
    """Where tasks run: submit, wait for the next one done, read its result."""

    attempts: int  # how often a task is tried before its failure ends the run

    def submit(self, config: BuildConfig, task: Task, fault: str | None) -> Any: ...

    def next_done(self, handles: list[Any]) -> Any: ...

    def result(self, handle: Any) -> dict[str, Any]: ...

    def cancel(self, handles: list[Any]) -> None: ...


class TaskRun:
    """The driver: plan tasks, submit them, seal dates as their blocks arrive."""

    def __init__(self, builder: Builder, blocks: list[EntityBlock]) -> None:
        self.builder = builder
        self.blocks = blocks
        self.summary = builder.summary
        self.staged: dict[dt.date, dict[int, dict[str, Any]]] = {}

    def staged_manifest(self, day: dt.date, block: EntityBlock) -> dict[str, Any] | None:
        return staged_block(
            self.builder.config.out, day, block.index, block_identity(self.builder, block)
        )

    def seal(self, day: dt.date) -> None:
        manifests = [self.staged[day][b.index] for b in self.blocks]
        counts: dict[str, int] = {}
        for m in manifests:
            self.summary.add(counts, m["counts"])
            self.summary.add_tally(m["tally"])
        manifest = self.builder.manifest(day, counts)
        if len(self.blocks) > 1:
            manifest["entity_blocks"] = len(self.blocks)
        with self.summary.timings.stage("seal"):
            seal(self.builder.config.out, day, manifests, manifest)
        self.summary.as_of_dates.append(day)

    def plan(self, dates: list[dt.date], skip: set[dt.date]) -> tuple[list[Task], list[dt.date]]:
        """The tasks still to run and the dates they (or staged blocks) will seal."""
        cfg = self.builder.config
        dates = sorted(set(dates))
        previous = {d: (dates[i - 1] if i else None) for i, d in enumerate(dates)}
        todo = [d for d in dates if d not in skip]
        self.summary.skipped_dates = [d for d in dates if d in skip]
        for d in self.summary.skipped_dates:
            clear_staging(cfg.out, d)
        self.missing = {d: {b.index for b in self.blocks} for d in todo}
        if cfg.resume:  # blocks staged by an interrupted run count as done
            for d in todo:
                for block in self.blocks:
                    staged = self.staged_manifest(d, block)
                    if staged is not None:
                        self.staged.setdefault(d, {})[block.index] = staged
                        self.missing[d].discard(block.index)
        return _tasks(todo, previous, dates[0], self.missing, self.blocks, cfg.chunk_days), todo

    def run(
        self,
        backend: Backend,
        tasks: list[Task],
        todo: list[dt.date],
        progress: ProgressFn | None,
        fault: str | None,
    ) -> RunSummary:
        cfg = self.builder.config
        for d in todo:  # dates every block of which was staged before
            if not self.missing[d]:
                self.seal(d)
        if progress and self.summary.as_of_dates:
            progress(len(self.summary.as_of_dates), len(todo), self.summary.states_out)
        handles = {backend.submit(cfg, task, fault): task for task in tasks}
        while handles:
            done = backend.next_done(list(handles))
            task = handles.pop(done)
            try:
                result = backend.result(done)
            except Exception as exc:  # a task failed for good: say which, seal nothing of it
                backend.cancel(list(handles))
                raise RunError(_failure(task, exc, backend.attempts)) from None
            for stage, seconds in result["timings"].items():
                self.summary.timings.seconds[stage] = (
                    self.summary.timings.seconds.get(stage, 0.0) + seconds
                )
            self.builder.entities_matched |= result["entities_matched"]
            sealed = len(self.summary.as_of_dates)
            for d in task.dates:
                self.missing[d].discard(task.block.index)
                if not self.missing[d]:
                    self._collect(d)
                    self.seal(d)
            if progress and len(self.summary.as_of_dates) > sealed:
                progress(len(self.summary.as_of_dates), len(todo), self.summary.states_out)
        self.summary.as_of_dates.sort()
        return self.summary

    def _collect(self, day: dt.date) -> None:
        """Read the block manifests of a date whose blocks are all staged."""
        for block in self.blocks:
            if block.index in self.staged.get(day, {}):
                continue
            staged = self.staged_manifest(day, block)
            if staged is None:
                raise RunError(f"{day}: {block.describe()} was staged but its files are gone")
            self.staged.setdefault(day, {})[block.index] = staged


def _failure(task: Task, exc: BaseException, attempts: int) -> str:
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, StabfragError):
        return f"{task.describe()}: {cause}"
    text = str(cause).strip().splitlines()
    first = next((line for line in text if line.strip()), type(cause).__name__)
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return (
        f"{task.describe()} failed{tried} ({first.strip()}); "
        "no date of that chunk is sealed: run the same command with --resume"
    )
