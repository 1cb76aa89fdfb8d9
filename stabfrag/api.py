"""The public API: build and backfill the joint space, then open what was built.

`import stabfrag` exposes these (see `stabfrag.__all__`); the command line is one of
their users. Every function returns Polars frames or typed values and prints nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import polars as pl
import pyarrow as pa

from stabfrag.config import DEFAULT_MEMORY, BuildConfig, parse_factors, parse_weights
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.errors import ConfigError, QueryError, StabfragError, first_line

if TYPE_CHECKING:
    from stabfrag.analysis.report import Report
    from stabfrag.index.search import AnalogIndex

# A prices file or folder, or the rows themselves.
PricesLike: TypeAlias = "Path | str | pl.DataFrame | pa.Table"
_OPTIONS = {f.name for f in dataclasses.fields(BuildConfig)} - {"prices", "out", "chunk_days"}


def build(
    prices: PricesLike,
    *,
    as_of: dt.date | str,
    out: Path | str = "stabfrag-out",
    progress: ProgressFn | None = None,
    **options: Any,
) -> RunSummary:
    """Build the joint space as of one date into `out` (Parquet and stabfrag.duckdb).

    `prices` is a prices file or folder, or a Polars or Arrow frame of them (SPEC §2).
    `options` are the run's settings: entities, profiles, scenarios, model_dir, model,
    market, factors ({"equity": "SPY", ...} or "equity=SPY,rates=TLT"), weights
    ({"stab": 1.0, ...} or "stab=1,scen=0.5"), max_staleness_days,
    bad_tick, pg_dsn, pg_table, ... (see BuildConfig).

    >>> summary = stabfrag.build("prices.parquet", as_of="2024-12-31", out="out")
    >>> summary.states_out
    """
    from stabfrag.engine import loop
    from stabfrag.engine.plan import build_plan

    day = _date(as_of, "as_of")
    with _prices_path(prices) as path:
        config = _config(path, out, options)
        plan = build_plan(path, day, max_staleness_days=config.max_staleness_days)
        return _index_updated(loop.run(config, plan.dates, progress=progress), config.out)


def backfill(
    prices: PricesLike,
    *,
    start: dt.date | str,
    end: dt.date | str,
    freq: str = "month",
    out: Path | str = "stabfrag-out",
    memory: str = DEFAULT_MEMORY,
    chunk_days: int | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> RunSummary:
    """Build every as-of date of [start, end]: every trading day (freq="day"), or the last
    of each week or month the data has; chunk by chunk within `memory` (or `chunk_days`
    calendar days a chunk). `options` as for `build`, plus resume, executor ("local" or
    "ray"), ray_address and entity_blocks.

    >>> stabfrag.backfill("prices.parquet", start="2015-01-01", end="2024-12-31")
    """
    from stabfrag.engine import loop
    from stabfrag.engine.plan import backfill_plan

    first, last = _date(start, "start"), _date(end, "end")
    with _prices_path(prices) as path:
        config = _config(path, out, options)  # the settings are checked before any read
        plan = backfill_plan(path, first, last, freq=freq, memory=memory, chunk_days=chunk_days)
        config = dataclasses.replace(config, chunk_days=plan.chunk_days or config.chunk_days)
        return _index_updated(loop.run(config, plan.dates, progress=progress), config.out)


def _index_updated(summary: RunSummary, out: Path) -> RunSummary:
    """Bring the folder's analog index up to date when it has one, so that a nightly build
    keeps `analogs(among="all")` on the index; where that cannot be done (no faiss), the
    run's warnings say the index is stale and how to refresh it."""
    from stabfrag.index import build, store

    if not summary.as_of_dates or not store.index_dir(out).is_dir():
        return summary
    try:
        done = build.build_index(out, update=True)
    except StabfragError as exc:
        summary.warnings.append(
            f"the analog index is stale from {min(summary.as_of_dates)} (queries search "
            f"exactly): {first_line(exc)}; then run stabfrag index update --out {out}"
        )
        return summary
    summary.analog_index = {k: done[k] for k in ("index", "states", "states_filed", "last_date")}
    if "advice" in done:
        summary.warnings.append(f"analog index: {done['advice']}")
    return summary


def open(out: Path | str = "stabfrag-out") -> Dataset:
    """Open a built output folder, from any working directory.

    >>> ds = stabfrag.open("stabfrag-out")
    >>> ds.fragile(top_n=10)
    """
    from stabfrag.sinks.dataset import partitions

    folder = Path(out)
    if not partitions(folder):
        raise QueryError(f"{folder}: nothing built there (no joint_embeddings partition)")
    return Dataset(folder)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A built output folder: its dates, rankings, neighbours, histories and vectors, as
    Polars frames. Each method reads the Parquet files through the folder's DuckDB views."""

    out: Path

    def dates(self) -> list[dt.date]:
        """The built as-of dates, ascending."""
        from stabfrag.sinks.dataset import partitions

        return partitions(self.out)

    def fragile(self, as_of: dt.date | str | None = None, top_n: int = 20) -> pl.DataFrame:
        """The `top_n` entity states most similar to a HIGH-severity scenario on `as_of`
        (default: the newest date), with their nearest scenario."""
        from stabfrag.analysis import query as q

        day = self._date(as_of)
        q.check_date(self.out, day)
        params = {"as_of": day, "top_n": _count(top_n, "top_n", 1)}
        return q.run_sql(self.out, "fragile", params)

    def nearest(
        self,
        *,
        entity: str | None = None,
        scenario: str | None = None,
        as_of: dt.date | str | None = None,
        top_n: int = 10,
    ) -> pl.DataFrame:
        """The scenarios nearest an entity's state (`entity`), or the entity states
        nearest a scenario (`scenario`), on `as_of` (default: the newest date)."""
        from stabfrag.analysis import query as q

        if (entity is None) == (scenario is None):
            raise ConfigError("give exactly one of entity or scenario")
        top_n = _count(top_n, "top_n", 1)
        day = self._date(as_of)
        q.check_date(self.out, day)
        if entity is not None:
            q.check_entity(self.out, entity, day)
            params = {"entity_id": entity, "as_of": day, "top_n": top_n}
            return q.run_sql(self.out, "nearest_scenarios", params)
        q.check_scenario(self.out, str(scenario))
        params = {"scenario_id": scenario, "as_of": day, "top_n": top_n}
        return q.run_sql(self.out, "nearest_entities", params)

    def analogs(
        self,
        entity: str | None = None,
        *,
        as_of: dt.date | str | None = None,
        top_n: int = 10,
        min_gap_days: int = 180,
        among: str = "own",
        vector: Any = None,
        exact: bool = False,
        index: AnalogIndex | None = None,
    ) -> pl.DataFrame:
        """Past states closest to `entity`'s state on `as_of` (or to `vector`, 384 numbers),
        of dates before `as_of` and at least `min_gap_days` before it.

        `among`: "own", the entity's own past dates; "all", every entity's past states;
        "others", every other entity's. "all" and "others" search the folder's analog
        index (`stabfrag index build`) when it is fresh for the query and `exact` is not
        set, else every stored vector (a stale index says so in one log line). Pass an
        opened `index` (`ds.analog_index()`) to run many queries without reloading it.

        >>> ds.analogs("E00042.US", as_of="2024-12-31", among="others", top_n=10)
        """
        from stabfrag.analysis import query as q
        from stabfrag.index.search import find_analogs

        day = self._date(as_of)
        top_n = _count(top_n, "top_n", 1)
        min_gap_days = _count(min_gap_days, "min_gap_days", 0)
        if among not in ("own", "all", "others"):
            raise ConfigError(f"among '{among}': give own, all or others")
        if among == "own" or vector is None:
            if entity is None:
                raise ConfigError("give the entity whose state to find analogs of")
            q.check_date(self.out, day)
            q.check_entity(self.out, entity, day)
        if among == "own":
            if vector is not None:
                raise ConfigError("a vector has no own past: use among='all' or 'others'")
            params = dict(entity_id=entity, as_of=day, top_n=top_n, min_gap_days=min_gap_days)
            return _models_shown(q.run_sql(self.out, "analogs", params))
        if among == "others" and entity is None:
            raise ConfigError("among='others' leaves out an entity: give it")
        opened = index if index is not None or exact else self.analog_index()
        return find_analogs(
            self.out,
            opened,
            as_of=day,
            entity=entity,
            vector=vector,
            exclude=entity if among == "others" else None,
            k=top_n,
            min_gap_days=min_gap_days,
            exact=exact,
        )

    def analog_index(self) -> AnalogIndex | None:
        """The folder's analog index, loaded (its lists in memory) and checked against the
        partitions once; None when there is none. Needs the index extra."""
        from stabfrag.index.search import AnalogIndex

        return AnalogIndex.open(self.out)

    def history(self, entity: str) -> pl.DataFrame:
        """An entity's fragility and nearest scenario on every built date."""
        from stabfrag.analysis import query as q

        q.check_entity(self.out, entity)
        return _models_shown(q.run_sql(self.out, "entity_history", {"entity_id": entity}))

    def trajectory(self, entity: str, scenario: str) -> pl.DataFrame:
        """An entity's similarity to one scenario, and its fragility, over time."""
        from stabfrag.analysis import query as q

        q.check_entity(self.out, entity)
        q.check_scenario(self.out, scenario)
        params = {"entity_id": entity, "scenario_id": scenario}
        return _models_shown(q.run_sql(self.out, "trajectory", params))

    def vectors(self, as_of: dt.date | str | None = None, kind: str = "entity") -> pl.DataFrame:
        """The joint vectors of one date (`kind` "entity" or "scenario"): ids, fragility
        and `vector` as Array(Float32, 384)."""
        from stabfrag.analysis import query as q
        from stabfrag.sinks.dataset import read_table

        day = self._date(as_of)
        q.check_date(self.out, day)
        return read_table(self.out, "joint_embeddings", day).filter(pl.col("kind") == kind)

    def sql(self, text: str, /, **params: Any) -> pl.DataFrame:
        """Run SQL over the views (joint_embeddings, features, rejects, scenarios), read
        only; each parameter is read in the SQL as getvariable('name').

        >>> ds.sql("SELECT count(*) AS n FROM joint_embeddings WHERE as_of_date = "
        ...        "getvariable('day')", day=dt.date(2024, 12, 31))
        """
        from stabfrag.analysis import query as q

        return q.run_text(self.out, q.sql_text(text), params)

    def evaluate(self, labels: Path | str, **options: Any) -> dict[str, Any]:
        """The validity figures on labelled periods (analysis.evaluate: prices,
        exposed_to, min_corr, compare, plot, profiles, profile_weights)."""
        from stabfrag.analysis.evaluate import evaluate

        return evaluate(self.out, Path(labels), **options)

    def report(
        self,
        path: Path | str = "report.html",
        *,
        as_of: dt.date | str | None = None,
        entity: str | None = None,
    ) -> Report:
        """Write the HTML report of `as_of` (default: the newest date) to `path`; in a
        notebook the returned Report shows its charts inline."""
        from stabfrag.analysis.report import build_report

        return build_report(self.out, self._date(as_of), Path(path), entity)

    def _date(self, as_of: dt.date | str | None) -> dt.date:
        if as_of is None:
            return self.dates()[-1]
        return _date(as_of, "as_of")


def _models_shown(frame: pl.DataFrame) -> pl.DataFrame:
    """A result over several dates keeps its model_id column only when it spans more than
    one model (a folder built with --allow-mixed-models): then fragility of one model is
    never read beside another's unawares."""
    if "model_id" in frame.columns and frame["model_id"].n_unique() <= 1:
        return frame.drop("model_id")
    return frame


def _date(value: dt.date | str | np.datetime64, name: str) -> dt.date:
    """A date from a date, a datetime (or pandas Timestamp), a numpy datetime64 (what a
    frame's .to_numpy() gives) or 'YYYY-MM-DD'."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64) and not np.isnat(value):
        return dt.date.fromisoformat(str(value.astype("datetime64[D]")))
    try:
        return dt.date.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} '{value}' is not a date (YYYY-MM-DD)") from None


def _count(value: Any, name: str, least: int) -> int:
    """A whole-number argument, checked as the command line checks its option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name} must be a whole number >= {least}, not {value!r}")
    return int(value)


def _config(prices: Path, out: Path | str, options: dict[str, Any]) -> BuildConfig:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    if options.get("weights") is not None:  # checked as the command line's text is
        options = {**options, "weights": parse_weights(options["weights"])}
    if options.get("market") is not None and not isinstance(options["market"], str):
        raise ConfigError(f"market: {options['market']!r} is not an entity id")
    if options.get("factors") is not None:
        options = {**options, "factors": parse_factors(options["factors"]) or None}
    paths = {k: Path(v) for k, v in options.items() if k in _PATHS and v is not None}
    return BuildConfig(prices=prices, out=Path(out), **{**options, **paths})


_PATHS = {"entities", "profiles", "scenarios", "model_dir"}


@contextmanager
def _prices_path(prices: PricesLike) -> Iterator[Path]:
    """A path to read the prices from: the one given, or a frame written to a temporary
    Parquet file for the length of the run (its bytes, not its name, make the input's
    fingerprint)."""
    if isinstance(prices, str | Path):
        yield Path(prices)
        return
    if not isinstance(prices, pl.DataFrame | pa.Table | pa.RecordBatch):
        raise ConfigError("prices: give a path, a Polars DataFrame or an Arrow table")
    frame = pl.DataFrame(prices)  # an Arrow table or batch converts as pl.from_arrow does
    with tempfile.TemporaryDirectory(prefix="stabfrag-prices-") as folder:
        path = Path(folder) / "prices.parquet"
        frame.write_parquet(path)
        yield path
