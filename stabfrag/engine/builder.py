"""The chunk builder: read a window, validate, features at every (entity, as-of), encode,
join, and cut the result into one partition per as-of date.

A build for one date is a backfill of one date: the same function makes both, so their
vectors are the same bytes. Work goes in chunks of as-of dates, each read with its own
look-back, so memory follows the chunk, not the history. Every executor runs this.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag import __version__
from stabfrag.asof.requests import empty_entities, state_requests, tick_series
from stabfrag.asof.vectors import profiles_at
from stabfrag.config import BAD_TICK_MULTIPLE, BuildConfig
from stabfrag.engine.encode import encode_states, join_scenarios
from stabfrag.engine.entity_blocks import EntityBlock
from stabfrag.engine.manifest import fingerprint
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.rejects import dated_row_rejects, own_rows
from stabfrag.engine.rows import entity_scope, joint_rows, scenario_scope
from stabfrag.engine.scenario_space import Key, ScenarioLibrary, ScenarioSpace
from stabfrag.engine.summary import RunSummary
from stabfrag.errors import ConfigError
from stabfrag.features.plan import compute_features, unique_rows
from stabfrag.features.registry import FEATURE_NAMES, LOOKBACK_ROWS
from stabfrag.ingest.entities import read_entities
from stabfrag.ingest.prices import Validated, read_prices, validate
from stabfrag.ingest.profiles import read_profiles
from stabfrag.ingest.reasons import ROW_REASONS, STATE_REASONS
from stabfrag.ingest.runs import entity_starts, kept_starts
from stabfrag.ingest.ticks import SCALE_ROWS
from stabfrag.ingest.window import read_window
from stabfrag.model.bundle import load_models
from stabfrag.scenarios.library import Scenario, load_library
from stabfrag.schema import DATE, ENTITY, PRICE_SCHEMA, conform
from stabfrag.sinks.base import Partition, Sink, check_tables
from stabfrag.sinks.dataset import TABLE_SCHEMAS

# Valid rows an entity needs before an as-of date for its state to be read in full: the
# features' look-back and the bad-tick scale of its oldest row (else its whole history is read).
READ_ROWS = LOOKBACK_ROWS + SCALE_ROWS + 1

FEATURE_COLUMNS = (
    "as_of_date",
    ENTITY,
    DATE,
    "window_start",
    "n_obs",
    *FEATURE_NAMES,
    "features_null",
)


def reference_prices(
    prices: Path | None, library: tuple[Scenario, ...], *, bad_tick: float = BAD_TICK_MULTIPLE
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The valid prices of the library's reference entities (empty when there are none),
    and their bad ticks known only on a later date."""
    refs = sorted({s.reference_entity for s in library if s.reference_entity})
    if not refs or prices is None:
        return pl.DataFrame(schema=PRICE_SCHEMA), None
    raw = read_prices(prices, where=pl.col(ENTITY).is_in(refs))
    checked = validate(raw, min_prices=0, bad_tick=bad_tick)
    return checked.prices, checked.ticks


_BACKGROUND = ThreadPoolExecutor(max_workers=1)


class Builder:
    """One run: loads models, library, metadata once; then builds chunks of dates."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.summary = RunSummary(out=str(config.out))
        with self.summary.timings.stage("models"):
            self.models = load_models(config.model_dir, config.model)
            self.weights = {**self.models.joint.weights, **(config.weights or {})}
            self.library = load_library(config.scenarios)
            refs, ref_ticks = reference_prices(
                config.prices, self.library, bad_tick=config.bad_tick
            )
            self.scenarios = ScenarioLibrary(
                self.models,
                self.library,
                refs,
                max_staleness_days=config.max_staleness_days,
                reference_ticks=ref_ticks,
            )
            self.profiles = (
                read_profiles(config.profiles, stab_basis=self.models.stab.model_id)
                if config.profiles
                else None
            )
            self.entities_matched = False
            # Hashing the input's bytes (0.6 s for a 300 MB file) runs beside the build:
            # only the manifests, written last, need it.
            self._fingerprint = _BACKGROUND.submit(fingerprint, config, self.library, self.weights)
        if self.weights["stab"] + self.weights["scen"] <= 0:
            raise ConfigError(
                "--weights: stab or scen must be above 0 (a state without a profile would "
                "have no vector)"
            )
        if not any(s.severity == "HIGH" for s in self.library):
            self.summary.warnings.append(
                "the scenario library has no HIGH-severity scenario: fragility is null"
            )
        self.summary.models = self.models.hashes()
        self.summary.weights = self.weights

    @property
    def fingerprint(self) -> str:
        """What the run's partitions are made from (see engine.manifest.fingerprint)."""
        return self._fingerprint.result()

    def manifest(self, as_of: dt.date, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "as_of_date": as_of.isoformat(),
            "input_fingerprint": self.fingerprint,
            "models": self.models.hashes(),
            # What evaluate reloads: the library and models this partition was built with.
            "model_dir": None if self.config.model_dir is None else str(self.config.model_dir),
            "model": self.models.model_id,
            "market": self.config.market,
            "scenario_library": None
            if self.config.scenarios is None
            else str(self.config.scenarios),
            "weights": self.weights,
            "tau": self.models.joint.tau,
            "bad_tick": self.config.bad_tick,
            "counts": counts,
            "stabfrag_version": __version__,
        }

    def is_complete(self, manifest: dict[str, Any] | None) -> bool:
        return bool(
            manifest
            and manifest.get("input_fingerprint") == self.fingerprint
            and manifest.get("models") == self.models.hashes()
        )

    def run(
        self,
        dates: list[dt.date],
        sinks: list[Sink],
        *,
        skip: set[dt.date] | None = None,
        progress: ProgressFn | None = None,
    ) -> RunSummary:
        """Build every date of `dates` (ascending) except `skip`, chunk by chunk."""
        dates = sorted(set(dates))
        skip = skip or set()
        previous = {d: (dates[i - 1] if i else None) for i, d in enumerate(dates)}
        todo = [d for d in dates if d not in skip]
        self.summary.skipped_dates = [d for d in dates if d in skip]
        done = 0
        for chunk in chunks(todo, self.config.chunk_days):  # bounded memory per chunk
            opening = chunk[0] == dates[0]
            self._publish(self.build_chunk(chunk, previous, first_of_run=opening), sinks)
            done += len(chunk)
            self.summary.as_of_dates.extend(chunk)
            if progress:
                progress(done, len(todo), self.summary.states_out)
        if (
            self.config.entities is not None
            and self.summary.states_out
            and not self.entities_matched
        ):
            self.summary.warnings.append(
                f"{self.config.entities}: the entities file matches none of the priced entities"
            )
        return self.summary

    def _publish(self, partitions: list[Partition], sinks: list[Sink]) -> None:
        """Count and write a chunk's partitions. A method of its own so that nothing of the
        chunk outlives it: a table's vectors are a view of the whole chunk's array, so one
        partition left in a loop variable would hold every vector of the chunk while the
        next chunk runs."""
        for part in partitions:
            self.summary.add_tally(part.tally)
        for sink in sinks:
            with self.summary.timings.stage(f"write_{sink.name}"), sink:
                for part in partitions:
                    sink.write(part)
                sink.commit()

    def build_chunk(
        self,
        chunk: list[dt.date],
        previous: dict[dt.date, dt.date | None],
        *,
        first_of_run: bool,
        block: EntityBlock | None = None,
    ) -> list[Partition]:
        """The partitions of `chunk`'s dates: of every entity, or of one entity block (whose
        last block carries the scenario rows)."""
        cfg, t = self.config, self.summary.timings
        with t.stage("read"):
            raw = read_window(
                cfg.prices,
                first=chunk[0],
                last=chunk[-1],
                include_undated=first_of_run,
                min_rows=READ_ROWS,
                where=None if block is None else block.expr(),
            )
        with t.stage("validate"):
            checked = validate(raw, min_prices=0, bad_tick=cfg.bad_tick)
            del raw  # the read's text columns: the chunk's peak comes later
            requests, ent_rejects = state_requests(
                checked.prices,
                chunk,
                max_staleness_days=cfg.max_staleness_days,
                ticks=checked.ticks,
                starts=checked.starts,
            )
        with t.stage("features"):
            series, requests = tick_series(
                checked.prices, checked.ticks, requests, LOOKBACK_ROWS + 1
            )
            # (An open tick's series is appended as an entity of its own: new runs.)
            starts = checked.starts if series is checked.prices else entity_starts(series[ENTITY])
            series, requests, starts = windows_only(series, requests, starts)
            rows = requests["_pos"].unique().sort().to_numpy()
            feats = compute_features(series, rows=rows, starts=starts).drop(ENTITY, DATE)
            # Past here a price row is only a date to count (_tally): let the rest go
            # before the vectors are made.
            del series
            checked = dataclasses.replace(checked, prices=checked.prices.select(DATE))
            states = requests.join(feats, on="_pos", how="left").sort("as_of_date", ENTITY)
            meta = read_entities(cfg.entities, states[ENTITY])
            self._check_entities_file(meta, states.height)
            states = states.join(meta.drop("matched"), on=ENTITY, how="left").rename(
                {"last_date": DATE}
            )
        with t.stage("encode"):
            encoded = encode_states(self.models, states, market=cfg.market)
        no_context = states.filter(pl.Series(encoded.no_context))["as_of_date"]
        ok = encoded.ok
        degenerate = states.filter(~pl.Series(ok)).select(
            "as_of_date",
            ENTITY,
            DATE,
            pl.lit("degenerate_state").alias("reason"),
            pl.lit("every feature sits at its calibration centre: no direction").alias("detail"),
        )
        if not ok.all():  # (most chunks have no degenerate state: no copy of the vectors)
            states, z_stab = states.filter(pl.Series(ok)), encoded.z_stab[ok]
        else:
            z_stab = encoded.z_stab
        with t.stage("joint"):
            with_scenarios = block is None or block.last
            joint = self._joint(states, z_stab, chunk, with_scenarios=with_scenarios)
        after = None if first_of_run else previous[chunk[0]]
        own = own_rows(after)
        judged = pl.concat(
            [requests.select(ENTITY, "as_of_date"), ent_rejects.select(ENTITY, "as_of_date")]
        )
        rejects = pl.concat(
            [
                dated_row_rejects(checked.rejects, checked.ticks, chunk, after),
                pl.concat([ent_rejects, degenerate]),
                empty_entities(
                    checked.rejects.filter(pl.col("reason").is_in(ROW_REASONS)), judged, chunk
                ),
            ]
        )
        tally = self._tally(chunk, checked, own, rejects, no_context)
        return self._partitions(
            chunk,
            states.select(FEATURE_COLUMNS),
            joint,
            rejects,
            tally=tally,
            with_scenarios=with_scenarios,
        )

    def _joint(
        self,
        states: pl.DataFrame,
        z_stab: np.ndarray,
        chunk: list[dt.date],
        *,
        with_scenarios: bool = True,
    ) -> pl.DataFrame:
        """Entity rows of the chunk's states and (when asked) scenario rows of every date of
        the chunk."""
        z_prof, has_prof = profiles_at(states, self.profiles)
        model_id = self.models.model_id
        entity_frames, scenario_frames = [], []
        for part in join_scenarios(
            self.models,
            self.scenarios,
            states["as_of_date"],
            z_stab,
            weights=self.weights,
            z_prof=z_prof,
            has_prof=has_prof,
            consume=True,  # the chunk's z_stab is not read after: it holds the vectors
        ):
            space, res = part.space, part.result
            ids = space.table["scenario_id"].to_numpy()
            entity_frames.append(
                joint_rows(
                    states.filter(pl.Series(part.rows)),
                    kind="entity",
                    model_id=model_id,
                    scope=entity_scope(pl.Series(has_prof[part.rows])),
                    vectors=res.vectors,
                    nearest=ids[res.nearest],
                    similarity=res.nearest_similarity,
                    fragility=res.fragility,
                )
            )
        versions: dict[Key, list[dt.date]] = {}
        for d in chunk if with_scenarios else []:  # every date has scenario rows, states or not
            versions.setdefault(self.scenarios.key(d), []).append(d)
        for key, dates in versions.items():
            scenario_frames.append(self._scenario_rows(self.scenarios.space(key), dates))
        # Per date: entities by id, then scenarios in library order. Slices laid end to
        # end, not a sort: the chunk's vectors are not gathered into a new column.
        entities, scenario_rows = (
            _split(pl.concat(f, how="vertical")) if f else {}
            for f in (entity_frames, scenario_frames)
        )
        pieces = [
            part
            for d in sorted(entities.keys() | scenario_rows.keys())
            for part in (entities.get(d), scenario_rows.get(d))
            if part is not None
        ]
        if not pieces:
            return pl.DataFrame(schema=TABLE_SCHEMAS["joint_embeddings"])
        return pl.concat(pieces, how="vertical", rechunk=False)

    def _scenario_rows(self, space: ScenarioSpace, dates: list[dt.date]) -> pl.DataFrame:
        """The scenario rows of `dates`, which share one library version."""
        base = pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}).join(
            space.table.select("scenario_id").with_columns(space.features["features_null"]),
            how="cross",
        )
        return joint_rows(
            base,
            kind="scenario",
            model_id=self.models.model_id,
            scope=pl.concat([scenario_scope(space.table, self.library)] * len(dates)),
            vectors=np.tile(space.vectors, (len(dates), 1)),
        )

    def _check_entities_file(self, meta: pl.DataFrame, states: int) -> None:
        """Note whether the entities file describes any state's entity (said at the end)."""
        if states:
            self.entities_matched = self.entities_matched or bool(meta["matched"].any())

    def _tally(
        self,
        chunk: list[dt.date],
        checked: Validated,
        own: pl.Expr,
        rejects: pl.DataFrame,
        no_context: pl.Series,
    ) -> dict[dt.date, dict[str, Any]]:
        """The run summary's counts of each date of the chunk (states are added later)."""
        # A row is read by the chunk its date falls in, though a bad tick may be known (and
        # reported) only in the next: rows read count by date, rejects by when known.
        read_rejects = checked.rejects.filter(pl.col("reason").is_in(ROW_REASONS)).filter(own)
        read = pl.concat([checked.prices.filter(own)[DATE], read_rejects[DATE]])
        per_date = {
            "rows_read": _per_date(read, chunk),
            "range_dropped": _per_date(
                checked.range_dropped_dates.to_frame().filter(own)[DATE], chunk
            ),
            "spread_dropped": _per_date(
                checked.spread_dropped_dates.to_frame().filter(own)[DATE], chunk
            ),
            "states_without_context": _per_date(no_context, chunk),
        }
        rows = _reasons_by_date(rejects.filter(pl.col("reason").is_in(ROW_REASONS)))
        ents = _reasons_by_date(rejects.filter(pl.col("reason").is_in(STATE_REASONS)))
        return {
            d: {
                **{key: int(n[i]) for key, n in per_date.items()},
                "rows_rejected": rows.get(d, {}),
                "entities_rejected": ents.get(d, {}),
            }
            for i, d in enumerate(chunk)
        }

    def _partitions(
        self,
        chunk: list[dt.date],
        features: pl.DataFrame,
        joint: pl.DataFrame,
        rejects: pl.DataFrame,
        *,
        tally: dict[dt.date, dict[str, Any]],
        with_scenarios: bool = True,
    ) -> list[Partition]:
        """Split the chunk's tables into one partition per as-of date.

        Each table is given its schema and checked for non-finite values once, here, not
        once per date in the sink: a query per table and date cost more than the writes
        of a daily run's small partitions.
        """
        whole = {
            "joint_embeddings": joint,
            "features": features,
            "rejects": rejects.sort(
                "as_of_date", "reason", ENTITY, DATE, "detail", nulls_last=True
            ),
        }
        whole = {name: conform(frame, TABLE_SCHEMAS[name]) for name, frame in whole.items()}
        check_tables(whole)
        by_date = {name: _split(frame) for name, frame in whole.items()}
        templates: dict[Key, pl.DataFrame] = {}
        out = []
        for d in chunk:
            tables = {name: parts.get(d, pl.DataFrame()) for name, parts in by_date.items()}
            if with_scenarios:
                tables["scenarios"] = self._scenario_table(d, templates)
            kinds = tables["joint_embeddings"].get_column(
                "kind", default=pl.Series(dtype=pl.String)
            )
            states = int((kinds == "entity").sum())
            rej = tables["rejects"]
            n_ent_rej = int(rej["reason"].is_in(STATE_REASONS).sum()) if rej.height else 0
            counts = {
                "states": states,
                "scenarios": int((kinds == "scenario").sum()),
                "entities_in": states + n_ent_rej,
                "entities_rejected": n_ent_rej,
                "rejects": rej.height,
            }
            day = {
                **tally[d],
                "states_out": states,
                "entities_in": counts["entities_in"],
                "scenario_rows": counts["scenarios"],
            }
            out.append(
                Partition(d, tables, self.manifest(d, counts), tally=day, finite_checked=True)
            )
        return out

    def _scenario_table(self, as_of: dt.date, templates: dict[Key, pl.DataFrame]) -> pl.DataFrame:
        """The scenarios table of `as_of`: its library version's table, conformed and
        checked once per version, with the date put in without a query."""
        key = self.scenarios.key(as_of)
        template = templates.get(key)
        if template is None:
            table = self.scenarios.space(key).table.with_columns(pl.lit(as_of).alias("as_of_date"))
            template = templates[key] = conform(table, TABLE_SCHEMAS["scenarios"])
            check_tables({"scenarios": template})
        table = template.clone()
        column = table.get_column_index("as_of_date")
        dates = pl.repeat(as_of, table.height, eager=True).alias("as_of_date")
        return table.replace_column(column, dates)


def _runs(frame: pl.DataFrame) -> dict[dt.date, tuple[int, int]]:
    """(offset, length) of each as-of date's rows in `frame`, sorted by as_of_date."""
    days = frame["as_of_date"].cast(pl.Int32).to_numpy()
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    lengths = np.diff(np.r_[starts, len(days)])
    keys = frame["as_of_date"].gather(starts).to_list()
    return {d: (int(a), int(n)) for d, a, n in zip(keys, starts, lengths, strict=True)}


def _split(frame: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
    """One frame per as-of date, in row order: slices of the frame, not copies (every
    table reaches here sorted by as_of_date; a frame that is not is sorted first)."""
    if frame.height == 0:
        return {}
    if not frame["as_of_date"].is_sorted():
        frame = frame.sort("as_of_date", maintain_order=True)
    return {d: frame.slice(a, n) for d, (a, n) in _runs(frame).items()}


def _per_date(dates: pl.Series, chunk: list[dt.date]) -> np.ndarray:
    """How many of `dates` fall to each as-of date of the chunk: the first on or after its
    own date (an undated row to the chunk's first)."""
    days = dates.cast(pl.Int32).fill_null(np.iinfo(np.int32).min).to_numpy()
    bounds = pl.Series(chunk, dtype=pl.Date).cast(pl.Int32).to_numpy()
    at = np.minimum(np.searchsorted(bounds, days, side="left"), len(chunk) - 1)
    return np.bincount(at, minlength=len(chunk))


def _reasons_by_date(rejects: pl.DataFrame) -> dict[dt.date, dict[str, int]]:
    """Rejects counted by as-of date and reason."""
    out: dict[dt.date, dict[str, int]] = {}
    counts = rejects.group_by("as_of_date", "reason").len().sort("as_of_date", "reason")
    for day, reason, n in counts.iter_rows():  # one row per (date, reason): a handful
        out.setdefault(day, {})[reason] = n
    return out


KEEP_ALL_SHARE = 0.8  # windows_only copies the series only when it drops a fifth or more


def windows_only(
    series: pl.DataFrame, requests: pl.DataFrame, starts: np.ndarray
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """The rows of `series` that some requested state's window reads, the requests pointed
    at their new positions, and the entities' first rows among them (`starts`: in
    `series`).

    A state's features read its own row and the LOOKBACK_ROWS before it, nothing older
    (kernels.py: a value depends only on its own window), so an entity's rows before its
    first requested row's window are dropped: a `build --as-of` computes features on one
    window per entity, not on the whole look-back read.
    """
    if series.height == 0:
        return series, requests, starts
    ends = np.r_[starts[1:], series.height]
    wanted = unique_rows(requests["_pos"].drop_nulls().to_numpy())
    # Per entity asked for (wanted is sorted): its rows from its first wanted row's window
    # to its end. Counted before any row-long array is made: a month-end chunk keeps all.
    ent = np.searchsorted(starts, wanted, side="right") - 1
    first = np.flatnonzero(np.r_[True, ent[1:] != ent[:-1]]) if len(ent) else ent
    asked = ent[first]
    begin = np.maximum(starts[asked], wanted[first] - LOOKBACK_ROWS)
    if (ends[asked] - begin).sum() > KEEP_ALL_SHARE * series.height:
        return series, requests, starts  # a copy would cost more than it saves
    edges = np.bincount(begin, minlength=series.height + 1) - np.bincount(
        ends[asked], minlength=series.height + 1
    )
    keep = np.cumsum(edges[:-1]) > 0  # the kept spans are disjoint: one per entity
    moved = pl.Series("_pos", np.cumsum(keep) - 1).gather(requests["_pos"])
    return series.filter(pl.Series(keep)), requests.with_columns(moved), kept_starts(starts, keep)


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
