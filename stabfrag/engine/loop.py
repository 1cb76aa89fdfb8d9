"""The one run loop: plan tasks, hand them to an executor, seal each date once every block
of it is staged, then refresh the views.

A one-process build is a run with the local executor; a Ray backfill is the same run with
the Ray executor. Warnings, counts, manifests and the summary come from this code
whichever executor ran the tasks.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import polars as pl

from stabfrag.atomic import folder_lock, make_folder
from stabfrag.config import BRANCHES, BuildConfig, format_factors
from stabfrag.engine.chunk import Chunk, ChunkBuilder
from stabfrag.engine.entity_blocks import EntityBlock, entity_blocks
from stabfrag.engine.executors.base import Executor
from stabfrag.engine.manifest import RunIdentity, fingerprint
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.engine.tally import Tally
from stabfrag.engine.tasks import BeforeTask, TaskResult, plan_tasks
from stabfrag.errors import ConfigError, RunError
from stabfrag.ingest.prices import collect, scan_prices
from stabfrag.schema import ENTITY
from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.blocks import clear_staging, seal, staged_block
from stabfrag.sinks.dataset import damage, partitions, read_manifest, read_table
from stabfrag.sinks.duckdb import write_views
from stabfrag.threads import pool


def run(
    config: BuildConfig,
    dates: list[dt.date],
    *,
    progress: ProgressFn | None = None,
    extra_sinks: list[Sink] | None = None,
    before_task: BeforeTask | None = None,
) -> RunSummary:
    """Build `dates` into the Parquet dataset (and any extra sinks), then refresh the views.

    The tasks run where config.executor says (this process, or Ray). `before_task` runs in
    the worker before each task: the plug-in point where tests inject faults.
    """
    make_folder(config.out)
    check_market(config)
    with folder_lock(config.out, wait=config.wait):
        return _run_locked(config, dates, progress, extra_sinks, before_task)


def _run_locked(
    config: BuildConfig,
    dates: list[dt.date],
    progress: ProgressFn | None,
    extra_sinks: list[Sink] | None,
    before_task: BeforeTask | None,
) -> RunSummary:
    """run() once it holds the output folder's writer lock."""
    if config.entity_blocks != 1 and config.executor != "ray":
        raise ConfigError("--entity-blocks needs --executor ray")
    summary = RunSummary(out=str(config.out))
    with summary.timings.stage("models"):
        builder = ChunkBuilder(config)
        identity = _identity(config, builder)
    _note_models(summary, builder)
    if not config.allow_mixed_models:
        check_one_model(config.out, builder.models.model_id)
    if len(set(dates)) > 1:
        summary.chunk_days = config.chunk_days
    database = _database(config)
    sinks = [*(extra_sinks or []), *([database] if database is not None else [])]
    executor = _executor(config, builder, identity, sinks=bool(sinks), before_task=before_task)
    blocks = entity_blocks(config.prices, config.entity_blocks)
    loop = RunLoop(identity, blocks, summary, sinks)
    try:
        with executor.session(summary):
            loop.run(executor, sorted(set(dates)), progress)
    except BaseException:
        if partitions(config.out):  # views over what is committed, for the --resume
            write_views(config.out)
        raise
    if database is not None and config.resume:
        catch_up(database, config.out, summary.skipped_dates, identity)
    _warn(config, summary, entities_matched=loop.entities_matched)
    if database is not None:
        summary.database = database.summary()
    with summary.timings.stage("views"):
        write_views(config.out)
    return summary


def _database(config: BuildConfig) -> Any:
    # (A PostgresSink or None: psycopg is imported only when a run loads a database.)
    if not config.pg_dsn:
        return None
    from stabfrag.sinks.postgres import PostgresSink  # psycopg only when asked for

    return PostgresSink(
        config.pg_dsn,
        config.pg_table,
        staging=config.pg_staging,
        replace_slice=config.pg_replace_slice,
    )


def _warn(config: BuildConfig, summary: RunSummary, *, entities_matched: bool) -> None:
    """What a finished run says it could not do as asked."""
    if config.entities is not None and summary.states_out and not entities_matched:
        summary.warnings.append(
            f"{config.entities}: the entities file matches none of the priced entities"
        )
    if not summary.states_out and summary.as_of_dates:
        summary.warnings.append(
            "no entity state was built: every entity was rejected on every date (see "
            "entity_rejects_by_reason; a history needs 64 prices)"
        )
    if config.market is not None and summary.tally.states_without_context:
        summary.warnings.append(
            f"--market {config.market}: {summary.tally.states_without_context:,} states had "
            "no state of the market on their date; their context is the calibration centre"
        )
    for role, count in sorted(summary.tally.states_without_factor.items()):
        entity = (config.factors or {}).get(role, "?")
        summary.warnings.append(
            f"--factors {role}={entity}: {count:,} states had no state of this factor on their "
            "date (too short or stale a history there); its part of their context reads calm"
        )


CATCH_UP_DATES = 64  # sealed dates loaded per database commit by catch_up


def catch_up(database: Any, out: Path, dates: list[dt.date], identity: RunIdentity) -> None:
    """Load the sealed dates the database does not hold for this model and input: Parquet
    is committed first, so a load that failed, or a run killed between the two, leaves
    the table short, and a --resume must fill it (from the files, nothing rebuilt)."""
    held = database.held(dates, identity.model_id, identity.input_fingerprint)
    todo = [d for d in dates if d not in held]
    for first in range(0, len(todo), CATCH_UP_DATES):
        with database:
            for day in todo[first : first + CATCH_UP_DATES]:
                rows = read_table(out, "joint_embeddings", day)
                manifest = read_manifest(out, day) or {}
                database.write(Partition(day, {"joint_embeddings": rows}, manifest, True))
            database.commit()
    database.reloaded = len(todo)


def check_one_model(out: Path, model_id: str) -> None:
    """Refuse to add dates of one model to a folder whose dates another model built: its
    fragility would jump between dates with nothing to say why."""
    others: dict[str, int] = {}
    for day in partitions(out):
        made = (read_manifest(out, day) or {}).get("model")
        if made and made != model_id:
            others[made] = others.get(made, 0) + 1
    if others:
        held = ", ".join(f"{m} ({n} dates)" for m, n in sorted(others.items()))
        raise ConfigError(
            f"--out {out} holds dates built with {held}; this run builds {model_id}: use "
            "another --out, or pass --allow-mixed-models"
        )


def check_market(config: BuildConfig) -> None:
    """A --market or --factors entity that the prices do not hold is a mistake, not a run
    without context."""
    named = {
        **{e: f"--factors {r}={e}" for r, e in (config.factors or {}).items()},
        **({config.market: f"--market {config.market}"} if config.market else {}),
    }
    if not named:
        return
    held = set(
        collect(
            scan_prices(config.prices)
            .filter(pl.col(ENTITY).is_in(list(named)))
            .select(pl.col(ENTITY).unique()),
            config.prices,
        )[ENTITY].to_list()
    )
    for entity, option in named.items():
        if entity not in held:
            raise ConfigError(f"{option}: no prices for this entity in {config.prices}")


def _identity(config: BuildConfig, builder: ChunkBuilder) -> RunIdentity:
    """The run's identity; hashing the input's bytes (0.6 s for a 300 MB file) runs beside
    the first chunk: only the manifests, written after it, need it."""
    pending: Future[str] = pool().submit(fingerprint, config, builder.library, builder.weights)
    return RunIdentity(
        config=config,
        fingerprint=pending,
        models=builder.models.hashes(),
        model_id=builder.models.model_id,
        weights=builder.weights,
        tau=builder.models.joint.tau,
    )


def _note_models(summary: RunSummary, builder: ChunkBuilder) -> None:
    if not any(s.severity == "HIGH" for s in builder.library):
        summary.warnings.append(
            "the scenario library has no HIGH-severity scenario: fragility is null"
        )
    summary.models = builder.models.hashes()
    summary.weights = builder.weights
    if builder.models.stab.context:
        market = builder.config.market
        summary.context = (
            f"the market entity {market}"
            if market
            else "the input's universe, no reference declared: each date's median state "
            "(another book gives other vectors; name one with --market)"
        )
    if builder.config.profiles is not None and builder.weights["prof"] <= 0:
        summary.warnings.append(_unweighted_profiles(builder))
    factors = builder.config.factors
    if builder.models.joint.factors is not None:
        summary.factors = (
            format_factors(factors)
            if factors
            else "none declared: the factor block is left off and the vectors are "
            f"{builder.models.joint.manifest.get('base_model')}'s geometry at the weights "
            f"{','.join(f'{b}={builder.weights[b]:g}' for b in BRANCHES)} (name the "
            "market's factor series with --factors equity=...,rates=...)"
        )
    elif factors:
        summary.warnings.append(
            f"--factors: {builder.models.model_id} has no factor block; the factors are not used"
        )


def _unweighted_profiles(builder: ChunkBuilder) -> str:
    """Why the profiles a run was given change no vector: the user's weight, or the
    model's."""
    if "prof" in (builder.config.weights or {}):
        return (
            "--profiles: --weights prof=0 gives the profile branch no weight; the profiles "
            "change no vector"
        )
    return (
        f"--profiles: {builder.models.model_id} gives the profile branch no weight (on "
        "generated markets it ranks who gets hurt no better); the profiles change no "
        "vector: pass --weights prof=W to weigh them"
    )


def _executor(
    config: BuildConfig,
    builder: ChunkBuilder,
    identity: RunIdentity,
    *,
    sinks: bool,
    before_task: BeforeTask | None,
) -> Executor:
    if config.executor == "ray":
        from stabfrag.engine.executors.ray import RayExecutor  # Ray only when asked for

        return RayExecutor(config, builder, identity, before_task=before_task)
    from stabfrag.engine.executors.local import LocalExecutor

    # With sinks after Parquet, a task hands its parts back to the loop that writes them.
    return LocalExecutor(builder, identity, keep_parts=sinks, before_task=before_task)


class RunLoop:
    """Plan the tasks, submit them, seal each date once all its blocks are staged."""

    def __init__(
        self,
        identity: RunIdentity,
        blocks: list[EntityBlock],
        summary: RunSummary,
        sinks: list[Sink],
    ) -> None:
        self.identity = identity
        self.out = identity.config.out
        self.blocks = blocks
        self.summary = summary
        self.sinks = sinks  # written once a date's Parquet is sealed (in-process parts only)
        self.staged: dict[dt.date, dict[int, dict[str, Any]]] = {}
        self.missing: dict[dt.date, set[int]] = {}
        self.entities_matched = False

    def run(self, executor: Executor, dates: list[dt.date], progress: ProgressFn | None) -> None:
        todo = self._plan(dates)
        tasks = plan_tasks(dates, self.missing, self.blocks, self.identity.config.chunk_days)
        for d in todo:  # dates every block of which was staged before
            if not self.missing[d]:
                self._seal(d)
        if progress and self.summary.as_of_dates:
            progress(len(self.summary.as_of_dates), len(todo), self.summary.states_out)
        executor.plan(tasks)
        handles = {executor.submit(task): task for task in tasks}
        while handles:
            done = executor.next_done(list(handles))
            task = handles.pop(done)
            sealed = len(self.summary.as_of_dates)
            # The result is not kept in a variable of this loop: a chunk's partitions must
            # not outlive it while the next chunk builds.
            self._finish(task, self._result(executor, done, list(handles)))
            if progress and len(self.summary.as_of_dates) > sealed:
                progress(len(self.summary.as_of_dates), len(todo), self.summary.states_out)
        self.summary.as_of_dates.sort()

    @staticmethod
    def _result(executor: Executor, done: Any, rest: list[Any]) -> TaskResult:
        try:
            return executor.result(done)
        except BaseException:  # a task failed for good: seal nothing of it
            executor.cancel(rest)
            raise

    def _plan(self, dates: list[dt.date]) -> list[dt.date]:
        """The dates to build (not sealed from these inputs before) and the blocks each
        lacks: with --resume, blocks staged by an interrupted run count as done."""
        cfg = self.identity.config
        skip = set()
        if cfg.resume:
            sealed = {d: read_manifest(cfg.out, d) for d in dates}
            complete = {d: m for d, m in sealed.items() if self.identity.is_complete(m)}
            skip = set(complete)
            self._damaged(complete, skip)
        todo = [d for d in dates if d not in skip]
        self.summary.skipped_dates = [d for d in dates if d in skip]
        for d in self.summary.skipped_dates:
            clear_staging(cfg.out, d)
        self.missing = {d: {b.index for b in self.blocks} for d in todo}
        if cfg.resume:
            for d in todo:
                for block in self.blocks:
                    staged = self._staged_manifest(d, block)
                    if staged is not None:
                        self.staged.setdefault(d, {})[block.index] = staged
                        self.missing[d].discard(block.index)
        return todo

    def _damaged(self, sealed: dict[dt.date, Any], skip: set[dt.date]) -> None:
        """Sealed dates (and their manifests) whose files are not as the manifest says are
        built again."""
        cfg = self.identity.config
        for day, manifest in sorted(sealed.items()):
            found = damage(cfg.out, manifest, checksums=cfg.verify)
            if found and found[0][0]:  # (an older manifest vouches for no size: kept)
                skip.discard(day)
                self.summary.damaged_dates.append(day)
        if self.summary.damaged_dates:
            dates = ", ".join(d.isoformat() for d in self.summary.damaged_dates)
            self.summary.warnings.append(
                f"{len(self.summary.damaged_dates)} sealed date(s) had damaged or missing files "
                f"and were built again: {dates}"
            )

    def _finish(self, task: Chunk, result: TaskResult) -> None:
        """Count a finished task, seal the dates it completed, hand its parts on."""
        for stage, seconds in result.timings.items():
            self.summary.timings.seconds[stage] = (
                self.summary.timings.seconds.get(stage, 0.0) + seconds
            )
        self.entities_matched |= result.entities_matched
        sealed = []
        for d in task.dates:
            self.missing[d].discard(task.block.index)
            if not self.missing[d]:
                self._collect(d)
                sealed.append(self._seal(d))
        if self.sinks and result.parts:
            self._publish(result.parts, dict(zip(task.dates, sealed, strict=True)))

    def _publish(self, parts: list[Partition], manifests: dict[dt.date, dict[str, Any]]) -> None:
        """Write a sealed chunk's partitions to the sinks after Parquet, one commit each."""
        for sink in self.sinks:
            with self.summary.timings.stage(f"write_{sink.name}"), sink:
                for part in parts:
                    sink.write(Partition(part.as_of, part.tables, manifests[part.as_of], True))
                sink.commit()

    def _seal(self, day: dt.date) -> dict[str, Any]:
        """Publish a date whose blocks are all staged: its files, then its manifest."""
        manifests = [self.staged[day][b.index] for b in self.blocks]
        counts: dict[str, int] = {}
        for m in manifests:
            for k, n in m["counts"].items():
                counts[k] = counts.get(k, 0) + n
            self.summary.tally = self.summary.tally + Tally.from_json(m["tally"])
        manifest = self.identity.partition(day, counts, len(self.blocks))
        with self.summary.timings.stage("seal"):
            seal(self.out, day, manifests, manifest)
        self.summary.as_of_dates.append(day)
        del self.staged[day]
        return manifest

    def _staged_manifest(self, day: dt.date, block: EntityBlock) -> dict[str, Any] | None:
        return staged_block(self.out, day, block.index, self.identity.block(block))

    def _collect(self, day: dt.date) -> None:
        """Read the block manifests of a date whose blocks are all staged."""
        for block in self.blocks:
            if block.index in self.staged.get(day, {}):
                continue
            staged = self._staged_manifest(day, block)
            if staged is None:
                raise RunError(f"{day}: {block.describe()} was staged but its files are gone")
            self.staged.setdefault(day, {})[block.index] = staged
