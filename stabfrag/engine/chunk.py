"""The chunk builder: read a window, validate, features at every (entity, as-of), encode,
join, and cut the result into one partition per as-of date.

A build for one date is a backfill of one date: the same function makes both, so their
vectors are the same bytes. Work goes in chunks of as-of dates, each read with its own
look-back, so memory follows the chunk, not the history. Every executor runs this.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import partial

import numpy as np
import polars as pl

from stabfrag.asof.requests import (
    empty_entities,
    state_requests,
)
from stabfrag.asof.vectors import profiles_at
from stabfrag.config import BuildConfig
from stabfrag.engine.context_cache import CACHE_DIR
from stabfrag.engine.entity_blocks import ALL_ENTITIES, EntityBlock
from stabfrag.engine.episodes import episode_contexts
from stabfrag.engine.partitions import DatePart, chunk_tally, date_parts, split_by_date
from stabfrag.engine.rejects import dated_row_rejects, own_rows
from stabfrag.engine.rows import entity_scope, joint_rows, scenario_scope
from stabfrag.engine.states import READ_ROWS, features_on, state_features
from stabfrag.engine.summary import Timings
from stabfrag.errors import ConfigError
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.ingest.entities import read_entities
from stabfrag.ingest.prices import Validated, validate
from stabfrag.ingest.profiles import read_profiles
from stabfrag.ingest.reasons import ROW_REASONS
from stabfrag.ingest.window import read_window
from stabfrag.model.bundle import load_models
from stabfrag.model.encode import date_medians, encode_states, factor_blocks, join_scenarios
from stabfrag.model.factors import SIGNATURE_FEATURES, date_feature_medians
from stabfrag.model.scenario_space import Key, ScenarioLibrary, ScenarioSpace, reference_prices
from stabfrag.scenarios.library import load_library
from stabfrag.schema import DATE, ENTITY
from stabfrag.sinks.dataset import TABLE_SCHEMAS

DATE_MEDIANS = ("as_of_date", *SIGNATURE_FEATURES)  # a first pass's universe for a factor model
FEATURE_COLUMNS = (
    "as_of_date",
    ENTITY,
    DATE,
    "window_start",
    "n_obs",
    *FEATURE_NAMES,
    "features_null",
)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What a task builds: as-of dates (ascending), of every entity or of one block."""

    dates: list[dt.date]
    after: dt.date | None  # the run's as-of date before the chunk's first (None: a first)
    block: EntityBlock = ALL_ENTITIES

    @property
    def with_scenarios(self) -> bool:
        """A date's scenario rows follow its entities: the last block writes them."""
        return self.block.last

    def describe(self) -> str:
        return f"chunk {self.dates[0]}..{self.dates[-1]}, {self.block.describe()}"


class ChunkBuilder:
    """Loads models, scenario library and profiles once; then builds chunks of dates."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.models = load_models(config.model_dir, config.model)
        self.weights = {**self.models.joint.weights, **(config.weights or {})}
        if self.weights["stab"] + self.weights["scen"] <= 0:
            raise ConfigError(
                "--weights: stab or scen must be above 0 (a state without a profile would "
                "have no vector)"
            )
        self.library = load_library(config.scenarios)
        # A factor model's declared factors (none for other models: they have no block).
        self.factors = (config.factors or {}) if self.models.joint.factors is not None else {}
        refs, ref_ticks = reference_prices(
            config.prices,
            self.library,
            bad_tick=config.bad_tick,
            also=tuple(self.factors.values()),
        )
        self.scenarios = ScenarioLibrary(
            self.models,
            self.library,
            refs,
            max_staleness_days=config.max_staleness_days,
            reference_ticks=ref_ticks,
            factors=self.factors,
            contexts=partial(episode_contexts, config, self.models, cache=config.out / CACHE_DIR),
        )
        profiles = (
            read_profiles(config.profiles, stab_basis=self.models.stab.model_id)
            if config.profiles
            else None
        )
        # A branch without weight changes no vector: its states are those without a
        # profile, and say so (the run's warning says why).
        self.profiles = profiles if self.weights["prof"] > 0 else None
        self.entities_matched = False  # whether the entities file describes any state's entity

    def build(
        self, chunk: Chunk, timings: Timings, contexts: pl.DataFrame | None = None
    ) -> list[DatePart]:
        """The partitions of the chunk's dates (`contexts`: each date's context, computed
        over every entity by contexts(), for a block of a build without a market)."""
        cfg = self.config
        with timings.stage("read"):
            raw = read_window(
                cfg.prices,
                first=chunk.dates[0],
                last=chunk.dates[-1],
                include_undated=chunk.after is None,
                min_rows=READ_ROWS,
                where=chunk.block.expr(),
            )
        with timings.stage("validate"):
            checked = validate(raw, min_prices=0, bad_tick=cfg.bad_tick)
            del raw  # the read's text columns: the chunk's peak comes later
            requests, ent_rejects = state_requests(
                checked.prices,
                chunk.dates,
                max_staleness_days=cfg.max_staleness_days,
                ticks=checked.ticks,
                starts=checked.starts,
            )
        with timings.stage("features"):
            states = self._states(checked, requests)
            # The dates of the kept rows of entities without any state in the chunk.
            stateless = checked.prices.filter(
                ~pl.col(ENTITY).is_in(states[ENTITY].unique().implode())
            ).select(DATE)
            # Past here a price row is only a date to count: let the rest go before the
            # vectors are made.
            checked = dataclasses.replace(checked, prices=checked.prices.select(DATE))
            reference = self._reference(chunk)
        with timings.stage("encode"):
            encoded = encode_states(
                self.models, states, market=cfg.market, reference=reference, contexts=contexts
            )
            blocks, no_factor = self._blocks(states, reference, contexts)
        no_context = states.filter(pl.Series(encoded.no_context))["as_of_date"]
        ok = encoded.ok
        degenerate = states.filter(~pl.Series(ok))
        z_stab = encoded.z_stab
        if not ok.all():  # (most chunks have no degenerate state: no copy of the vectors)
            states, z_stab = states.filter(pl.Series(ok)), z_stab[ok]
            blocks = None if blocks is None else (blocks[0], blocks[1][ok])
        with timings.stage("episode_contexts"):  # read once per run (a model that asks)
            self.scenarios.prepare(chunk.dates[-1])
        with timings.stage("joint"):
            joint = self._joint(states, z_stab, chunk, blocks)
        rejects = _rejects(chunk, checked, requests, ent_rejects, degenerate)
        tally = chunk_tally(
            chunk.dates, checked, own_rows(chunk.after), rejects, no_context, stateless, no_factor
        )
        tables = {"joint_embeddings": joint, "features": states.select(FEATURE_COLUMNS)}
        scenarios = self._scenario_table if chunk.with_scenarios else None
        return date_parts(chunk.dates, {**tables, "rejects": rejects}, tally, scenarios)

    def _blocks(
        self, states: pl.DataFrame, apart: pl.DataFrame | None, contexts: pl.DataFrame | None
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, pl.Series]]:
        """A factor model's date blocks (None for another model) and, for each declared
        factor, the dates of the states whose date lacks it; `apart`: the market and factor
        entities' states read apart, `contexts` each date's medians (a block)."""
        universe = None
        if contexts is not None and self.models.joint.factors is not None:
            universe = contexts.select(DATE_MEDIANS)
        blocks = factor_blocks(
            self.models,
            states,
            factors=self.factors,
            market=self.config.market,
            apart=apart,
            universe=universe,
        )
        return blocks, ({} if blocks is None else self._factor_gaps(states, apart))

    def _factor_gaps(
        self, states: pl.DataFrame, apart: pl.DataFrame | None
    ) -> dict[str, pl.Series]:
        """For each declared factor, the dates of the states whose date has no state of it
        (in `states` or read `apart`): its part of their date's signature reads calm."""
        # Only the factors' rows are looked at: no copy of the chunk's states.
        declared = pl.col(ENTITY).is_in(list(self.factors.values()))
        held = pl.concat(
            f.filter(declared).select(ENTITY, "as_of_date")
            for f in (states, apart)
            if f is not None
        )
        dates = states["as_of_date"]
        out = {}
        for role, entity in self.factors.items():  # five roles at most
            there = held.filter(pl.col(ENTITY) == entity)["as_of_date"]
            out[role] = dates.filter(~dates.is_in(there.implode()))
        return out

    def _reference(self, chunk: Chunk) -> pl.DataFrame | None:
        """The market entity's states on the chunk's dates, read apart from the block, for
        a context model split by entity: every block places its states beside the same
        market state (a state depends on its own window only: the same bytes as a one-block
        build's)."""
        market = self.config.market
        apart = [*([market] if market else []), *self.factors.values()]
        if chunk.block.count == 1 or not apart or not self.models.stab.context:
            return None
        return self._states_of(chunk, pl.col(ENTITY).is_in(apart))

    def contexts(self, chunk: Chunk) -> pl.DataFrame:
        """Each date's context over every entity (the median state): the first pass of a
        build without a market split by entity, so every block reads the same context a
        one-block build computes."""
        states = self._states_of(chunk, None)
        medians = date_medians(states, self.models.stab.standardised(states.select(FEATURE_NAMES)))
        if self.models.joint.factors is None:
            return medians
        return medians.join(date_feature_medians(states), on="as_of_date")

    def _states_of(self, chunk: Chunk, where: pl.Expr | None) -> pl.DataFrame:
        """The states of the chunk's dates of the entities `where` selects (None: all)."""
        return self._described(features_on(self.config, chunk.dates, where))

    def _states(self, checked: Validated, requests: pl.DataFrame) -> pl.DataFrame:
        """Every requested state with its features and the entities file's columns."""
        return self._described(state_features(checked, requests))

    def _described(self, states: pl.DataFrame) -> pl.DataFrame:
        """`states` with the entities file's columns."""
        meta = read_entities(self.config.entities, states[ENTITY])
        if states.height:
            self.entities_matched = self.entities_matched or bool(meta["matched"].any())
        return states.join(meta.drop("matched"), on=ENTITY, how="left").rename({"last_date": DATE})

    def _joint(
        self,
        states: pl.DataFrame,
        z_stab: np.ndarray,
        chunk: Chunk,
        blocks: tuple[np.ndarray, np.ndarray] | None,
    ) -> pl.DataFrame:
        """Entity rows of the chunk's states and (when the chunk writes them) scenario rows
        of every date of the chunk (`blocks`: a factor model's date blocks)."""
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
            date_blocks=blocks,
        ):
            space, res = part.space, part.result
            ids = space.table["scenario_id"].to_numpy()
            entity_frames.append(
                joint_rows(
                    states.filter(pl.Series(part.rows)),
                    kind="entity",
                    model_id=model_id,
                    scope=entity_scope(
                        pl.Series(has_prof[part.rows]),
                        scenarios=self.weights["scen"] > 0,
                        factors=blocks is not None,
                    ),
                    vectors=res.vectors,
                    nearest=ids[res.nearest],
                    similarity=res.nearest_similarity,
                    fragility=res.fragility,
                )
            )
        versions: dict[Key, list[dt.date]] = {}
        for d in chunk.dates if chunk.with_scenarios else []:  # every date, states or not
            versions.setdefault(self.scenarios.key(d), []).append(d)
        for key, dates in versions.items():
            scenario_frames.append(self._scenario_rows(self.scenarios.space(key), dates))
        return _by_date(entity_frames, scenario_frames)

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

    def _scenario_table(self, as_of: dt.date) -> tuple[Key, pl.DataFrame]:
        """The scenarios table of `as_of`'s library version, with its version key."""
        key = self.scenarios.key(as_of)
        return key, self.scenarios.space(key).table


def _rejects(
    chunk: Chunk,
    checked: Validated,
    requests: pl.DataFrame,
    ent_rejects: pl.DataFrame,
    degenerate: pl.DataFrame,
) -> pl.DataFrame:
    """The chunk's rejects: its own row rejects by the date they became known, entities
    without a state, degenerate states, and entities whose every row was rejected."""
    judged = pl.concat(
        [requests.select(ENTITY, "as_of_date"), ent_rejects.select(ENTITY, "as_of_date")]
    )
    return pl.concat(
        [
            dated_row_rejects(checked.rejects, checked.ticks, chunk.dates, chunk.after),
            pl.concat(
                [
                    ent_rejects,
                    degenerate.select(
                        "as_of_date",
                        ENTITY,
                        DATE,
                        pl.lit("degenerate_state").alias("reason"),
                        pl.lit("every feature sits at its calibration centre: no direction").alias(
                            "detail"
                        ),
                    ),
                ]
            ),
            empty_entities(
                checked.rejects.filter(pl.col("reason").is_in(ROW_REASONS)),
                judged,
                chunk.dates,
            ),
        ]
    )


def _by_date(
    entity_frames: list[pl.DataFrame], scenario_frames: list[pl.DataFrame]
) -> pl.DataFrame:
    """Per date: entities by id, then scenarios in library order. Slices laid end to end,
    not a sort: the chunk's vectors are not gathered into a new column."""
    entities, scenario_rows = (
        split_by_date(pl.concat(f, how="vertical")) if f else {}
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
