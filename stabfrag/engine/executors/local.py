"""The local executor: each task in this process, one after another, when its result is
asked for (so one chunk's frames are alive at a time)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from stabfrag.engine.chunk import Chunk, ChunkBuilder
from stabfrag.engine.manifest import RunIdentity
from stabfrag.engine.summary import RunSummary
from stabfrag.engine.tasks import BeforeTask, TaskResult, run_task


class LocalExecutor:
    def __init__(
        self,
        builder: ChunkBuilder,
        identity: RunIdentity,
        *,
        keep_parts: bool = False,
        before_task: BeforeTask | None = None,
    ) -> None:
        self.builder = builder
        self.identity = identity
        self.keep_parts = keep_parts  # the run has sinks after Parquet: hand them the parts
        self.before_task = before_task
        self.queue: dict[int, Chunk] = {}

    @contextlib.contextmanager
    def session(self, summary: RunSummary) -> Iterator[None]:
        yield

    def plan(self, tasks: list[Chunk]) -> None:
        pass  # the tasks run in this process, in date order: each reads what it lacks

    def submit(self, task: Chunk) -> Any:
        handle = len(self.queue)
        self.queue[handle] = task
        return handle

    def next_done(self, handles: list[Any]) -> Any:
        return min(handles)  # in the order submitted: the run's dates ascending

    def result(self, handle: Any) -> TaskResult:
        task = self.queue.pop(handle)
        if self.before_task is not None:
            self.before_task(task)
        return run_task(self.builder, self.identity, task, keep=self.keep_parts)

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            self.queue.pop(handle, None)
