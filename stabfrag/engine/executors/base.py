"""One executor interface: where a run's tasks run (Apache Hamilton's executors' shape)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from stabfrag.engine.chunk import Chunk
from stabfrag.engine.summary import RunSummary
from stabfrag.engine.tasks import TaskResult


class Executor(Protocol):
    """Submit tasks, wait for the next one done, read its result (raising, in one line
    where it can, when the task failed for good)."""

    def session(self, summary: RunSummary) -> AbstractContextManager[None]:
        """Hold what the tasks run on (a Ray connection) for the length of the run."""
        ...

    def plan(self, tasks: list[Chunk]) -> None:
        """Learn the run's tasks before any is submitted (what they all need, once)."""
        ...

    def submit(self, task: Chunk) -> Any: ...

    def next_done(self, handles: list[Any]) -> Any: ...

    def result(self, handle: Any) -> TaskResult: ...

    def cancel(self, handles: list[Any]) -> None: ...
