"""The Ray executor: tasks as Ray core tasks, on this machine or a cluster. Core tasks
only, no Ray Data writer; tasks return a few numbers, never frames (Ray's object store is
slow for those)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from stabfrag import logs
from stabfrag.allocator import tune_allocator
from stabfrag.config import BuildConfig
from stabfrag.engine.chunk import Chunk, ChunkBuilder
from stabfrag.engine.entity_blocks import ALL_ENTITIES
from stabfrag.engine.manifest import RunIdentity
from stabfrag.engine.summary import RunSummary
from stabfrag.engine.tasks import BeforeTask, TaskResult, run_task
from stabfrag.errors import ConfigError, RunError, ServiceError, StabfragError, first_line

MAX_RETRIES = 2  # a task whose worker is lost runs again, at most twice
CONNECT_TIMEOUT_S = 5


def import_ray() -> Any:
    """Ray, or a one-line error naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'stabfrag[ray]' (or use --executor local)"
        ) from None
    return ray


# Per worker process: the models, library and reference paths of the run it serves, loaded
# by its first task and kept for the next ones (the run's config says which run).
_WORKER: dict[str, ChunkBuilder] = {}


def _builder(identity: RunIdentity) -> ChunkBuilder:
    """This worker's builder of the run (made by its first task)."""
    tune_allocator()  # a Ray worker is its own process: the driver's settings are not here
    key = repr(identity.config)
    if key not in _WORKER:
        _WORKER.clear()  # one run's builder at a time
        _WORKER[key] = ChunkBuilder(identity.config)
    return _WORKER[key]


# The market context of each historical episode ended by the run's last date, and the
# seconds its reading took.
Episodes = tuple[dict[str, np.ndarray | None], float]


def _task(
    identity: RunIdentity,
    task: Chunk,
    before_task: BeforeTask | None,
    verbose: bool,
    contexts: Any = None,
    episodes: Episodes | None = None,
) -> TaskResult:
    """One task in a worker: build the block's partitions of the chunk and stage them
    (`episodes`: the historical episodes' contexts, read once for the run)."""
    logs.configure(verbose=int(verbose))
    builder = _builder(identity)
    if episodes is not None:
        builder.scenarios.hold(episodes[0])
    if before_task is not None:
        before_task(task)
    return run_task(builder, identity, task, contexts=contexts)


def _episodes(identity: RunIdentity, last: dt.date) -> Episodes:
    """Once per run, in one task: each historical episode's market context (a model that
    asks; read over every entity on its last day without a market), for every task. Read
    by each worker, it would cost every worker the reads of a whole-universe date."""
    library = _builder(identity).scenarios  # (the worker's models: loaded once, not timed)
    t0 = time.perf_counter()
    held = library.held(last)
    return held, time.perf_counter() - t0


def _contexts(identity: RunIdentity, task: Chunk) -> Any:
    """The first pass of a chunk split by entity without a market: each date's context
    over every entity (a few numbers per date), for the chunk's block tasks."""
    return _builder(identity).contexts(task)


class RayExecutor:
    attempts = MAX_RETRIES + 1

    def __init__(
        self,
        config: BuildConfig,
        builder: ChunkBuilder,
        identity: RunIdentity,
        *,
        before_task: BeforeTask | None = None,
    ) -> None:
        # A context model without a market places each state beside the median of every
        # entity of its date, which a block cannot see: a first pass computes it per chunk.
        self.first_pass = (
            config.entity_blocks > 1 and builder.models.stab.context and config.market is None
        )
        self.context_refs: dict[tuple[Any, ...], Any] = {}
        self.wants_episodes = builder.scenarios.contexts is not None
        self.episodes_ref: Any = None
        if config.pg_dsn:
            raise ConfigError(
                "--executor ray does not load PostgreSQL from its tasks: run the backfill, "
                "then stabfrag load --out OUT --pg-dsn DSN"
            )
        self.ray = import_ray()
        self.address = config.ray_address
        # The fingerprint is resolved here, once: a task carries it, never computes it.
        self.identity = dataclasses.replace(identity, fingerprint=identity.input_fingerprint)
        self.before_task = before_task
        self.tasks: dict[Any, Chunk] = {}

    @contextlib.contextmanager
    def session(self, summary: RunSummary) -> Iterator[None]:
        started = _connect(self.ray, self.address, summary)
        options = {
            "num_cpus": 1,
            "max_retries": MAX_RETRIES,
            # One task per core: each task's Polars keeps to its own core.
            "runtime_env": {"env_vars": {"POLARS_MAX_THREADS": "1"}},
        }
        self.remote = self.ray.remote(_task).options(**options)
        self.remote_contexts = self.ray.remote(_contexts).options(**options)
        self.remote_episodes = self.ray.remote(_episodes).options(**options)
        try:
            yield
            if self.episodes_ref is not None:  # its task's time, beside the others'
                seconds = summary.timings.seconds
                read = self.ray.get(self.episodes_ref)[1]
                seconds["episode_contexts"] = seconds.get("episode_contexts", 0.0) + read
        finally:
            if started:
                self.ray.shutdown()

    def plan(self, tasks: list[Chunk]) -> None:
        if tasks and self.wants_episodes:
            last = max(task.dates[-1] for task in tasks)
            self.episodes_ref = self.remote_episodes.remote(self.identity, last)

    def submit(self, task: Chunk) -> Any:
        contexts = None
        if self.first_pass:
            key = (tuple(task.dates), task.after)
            if key not in self.context_refs:  # once per chunk of dates, for all its blocks
                every = dataclasses.replace(task, block=ALL_ENTITIES)
                self.context_refs[key] = self.remote_contexts.remote(self.identity, every)
            contexts = self.context_refs[key]
        handle = self.remote.remote(
            self.identity, task, self.before_task, logs.verbose(), contexts, self.episodes_ref
        )
        self.tasks[handle] = task
        return handle

    def next_done(self, handles: list[Any]) -> Any:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return ready[0]

    def result(self, handle: Any) -> TaskResult:
        task = self.tasks.pop(handle)
        try:
            result: TaskResult = self.ray.get(handle)
            return result
        except Exception as exc:  # failed for good: say which, in one line
            raise RunError(_failure(task, exc, self.attempts)) from None

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle)


def _failure(task: Chunk, exc: BaseException, attempts: int) -> str:
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, StabfragError):
        return f"{task.describe()}: {cause}"
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return (
        f"{task.describe()} failed{tried} ({first_line(cause)}); "
        "no date of that chunk is sealed: run the same command with --resume"
    )


def _check_reachable(address: str | None) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that does not answer is one line in seconds, not
    Ray's minutes of retries."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ServiceError(
            f"--ray-address {address}: nothing answers there ({exc.strerror or exc})"
        ) from None


def _connect(ray: Any, address: str | None, summary: RunSummary) -> bool:
    """Join the cluster at `address`, or start Ray on this machine; True when this run
    started it (and so shuts it down)."""
    _check_reachable(address)
    if ray.is_initialized():  # a caller (a notebook, a test) has joined Ray already
        return False
    with summary.timings.stage("ray_start"):
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=logs.verbose(),  # -v: the workers' lines reach this terminal
                logging_level="ERROR",
            )
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            raise ServiceError(f"--ray-address {address or '(local)'}: {first_line(exc)}") from None
    return True
