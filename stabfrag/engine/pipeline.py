"""build / backfill: run the chunk builder over the dates, into the sinks, then the views.

The local executor builds chunk after chunk in this process and hands each chunk's
partitions to every sink; the Ray executor (engine.ray_executor) runs the same builder as
tasks. Either way the output is the same.
"""

from __future__ import annotations

import datetime as dt

from stabfrag.config import BuildConfig
from stabfrag.engine.builder import Builder
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.errors import ConfigError
from stabfrag.sinks.base import Sink
from stabfrag.sinks.dataset import read_manifest
from stabfrag.sinks.duckdb import write_views
from stabfrag.sinks.parquet import ParquetSink


def run(
    config: BuildConfig,
    dates: list[dt.date],
    *,
    progress: ProgressFn | None = None,
    extra_sinks: list[Sink] | None = None,
) -> RunSummary:
    """Build `dates` into the Parquet dataset (and any extra sinks), then refresh the views."""
    if config.out.exists() and not config.out.is_dir():
        raise ConfigError(f"--out {config.out} is a file; the output is a folder")
    builder = Builder(config)
    if len(set(dates)) > 1:
        builder.summary.chunk_days = config.chunk_days
    skip: set[dt.date] = set()
    if config.resume:
        skip = {d for d in dates if builder.is_complete(read_manifest(config.out, d))}
    if config.entity_blocks != 1 and config.executor != "ray":
        raise ConfigError("--entity-blocks needs --executor ray")
    if config.executor == "ray":
        from stabfrag.engine.ray_executor import run_ray  # Ray only when asked for

        summary = run_ray(builder, dates, skip=skip, progress=progress)
    else:
        summary = _run_here(builder, dates, skip, progress, extra_sinks or [])
    with summary.timings.stage("views"):
        write_views(config.out)
    return summary


def _run_here(
    builder: Builder,
    dates: list[dt.date],
    skip: set[dt.date],
    progress: ProgressFn | None,
    extra_sinks: list[Sink],
) -> RunSummary:
    """The one-process run: chunk after chunk, each handed to every sink."""
    config = builder.config
    sinks: list[Sink] = [ParquetSink(config.out), *extra_sinks]
    database = None
    if config.pg_dsn:
        from stabfrag.sinks.postgres import PostgresSink  # psycopg only when asked for

        database = PostgresSink(
            config.pg_dsn,
            config.pg_table,
            staging=config.pg_staging,
            replace_slice=config.pg_replace_slice,
        )
        sinks.append(database)
    summary = builder.run(dates, sinks, skip=skip, progress=progress)
    if database is not None:
        summary.database = database.summary()
    return summary
