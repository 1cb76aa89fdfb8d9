"""The Ray backend: the tasks of engine.tasks as Ray core tasks, on this machine or a
cluster. Core tasks only, no Ray Data writer; tasks return a few numbers, never frames
(Ray's object store is slow for those)."""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

from stabfrag.config import BuildConfig
from stabfrag.engine.builder import Builder
from stabfrag.engine.entity_blocks import entity_blocks
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.engine.tasks import FAULT_ENV, Task, TaskRun, build_block
from stabfrag.errors import ConfigError

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


class RayBackend:
    attempts = MAX_RETRIES + 1

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.remote = ray.remote(build_block).options(
            num_cpus=1,
            max_retries=MAX_RETRIES,
            # One task per core: each task's Polars keeps to its own core.
            runtime_env={"env_vars": {"POLARS_MAX_THREADS": "1"}},
        )

    def submit(self, config: BuildConfig, task: Task, fault: str | None) -> Any:
        return self.remote.remote(config, task, fault)

    def next_done(self, handles: list[Any]) -> Any:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return ready[0]

    def result(self, handle: Any) -> dict[str, Any]:
        return dict(self.ray.get(handle))

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle)


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
        raise ConfigError(
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
                log_to_driver=False,
                logging_level="ERROR",
            )
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"--ray-address {address or '(local)'}: {first}") from None
    return True


def run_ray(
    builder: Builder,
    dates: list[dt.date],
    *,
    skip: set[dt.date],
    progress: ProgressFn | None,
) -> RunSummary:
    """A backfill on Ray: the same partitions and summary counts as a local run."""
    cfg = builder.config
    if cfg.entity_blocks > 1 and builder.models.stab.context:
        raise ConfigError(
            f"--entity-blocks {cfg.entity_blocks}: model {builder.models.model_id} places each "
            "state beside its market, read from every entity of the date; use --entity-blocks 1"
        )
    if cfg.pg_dsn:
        raise ConfigError(
            "--executor ray does not load PostgreSQL from its tasks: run the backfill, then "
            "stabfrag load --out OUT --pg-dsn DSN"
        )
    run = TaskRun(builder, entity_blocks(cfg.prices, cfg.entity_blocks))
    tasks, todo = run.plan(dates, skip)
    ray = import_ray()
    started = _connect(ray, cfg.ray_address, builder.summary)
    try:
        return run.run(RayBackend(ray), tasks, todo, progress, os.environ.get(FAULT_ENV))
    finally:
        if started:
            ray.shutdown()
