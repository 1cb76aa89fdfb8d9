"""The embeddings evaluate compares on the same labelled states: the built joint space, other
joint models re-encoded from the stored features, vol_21 and vol_63 alone, and the design note's
original encoder (the 63-day window of close, volume and log return, flattened and
zero-padded to 384). The baselines live here, not in the product path."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.analysis.metrics import similarities
from stabfrag.asof.join import as_of_join
from stabfrag.asof.vectors import profiles_at
from stabfrag.config import BAD_TICK_MULTIPLE, MAX_STALENESS_DAYS, BuildConfig
from stabfrag.engine.episodes import episode_contexts
from stabfrag.errors import LabelError
from stabfrag.ingest.prices import read_prices, validate
from stabfrag.model.bundle import Models
from stabfrag.model.encode import encode_states, factor_blocks, join_scenarios
from stabfrag.model.linalg import normalise
from stabfrag.model.scenario_space import ScenarioLibrary, reference_prices
from stabfrag.scenarios.library import Scenario
from stabfrag.scenarios.paths import Baseline, synthesise_path, synthetic_features
from stabfrag.schema import DATE, DIM, ENTITY, POS, date_span

RAW_WINDOW = 63
EXPOSURE_WINDOW = 252  # trading days of returns behind an exposure correlation


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float32 (a row of zeros stays zeros): the states of a
    space are compared, never stored, and float32 halves what evaluate holds."""
    v = np.array(v, dtype=np.float32)  # a copy: the caller's array is left as it was
    norm = np.sqrt(np.einsum("ij,ij->i", v, v))
    np.divide(v, norm[:, None], out=v, where=norm[:, None] > 1e-12)
    return v


@dataclass(frozen=True)
class Space:
    """One way of embedding the labelled states, with its answers per state.

    `scenarios` are the newest library's scenarios in the same embedding (for episode
    match); `nearest` and `fragility` are the point-in-time answers.
    """

    name: str
    states: np.ndarray  # unit rows, or one score per state (distance)
    nearest: np.ndarray  # scenario id per state
    fragility: np.ndarray
    scenarios: np.ndarray
    table: pl.DataFrame  # the rows of `scenarios`: scenario_id, kind, severity, shock_type
    distance: bool = False


def built_space(
    name: str,
    tagged: pl.DataFrame,
    vectors: np.ndarray,
    scenario_vectors: np.ndarray,
    table: pl.DataFrame,
) -> Space:
    """The build's own joint space: its stored vectors (in `tagged`'s order) and answers."""
    return Space(
        name,
        unit_rows(vectors),
        tagged["nearest_scenario_id"].to_numpy(),
        tagged["fragility"].fill_null(np.nan).to_numpy(),
        scenario_vectors,
        table,
    )


def _joined(
    models: Models,
    scenarios: ScenarioLibrary,
    features: pl.DataFrame,
    tagged: pl.DataFrame,
    *,
    market: str | None,
    factors: dict[str, str] | None,
    weights: dict[str, float],
    profiles: pl.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each tagged state's joint vector, nearest scenario and fragility, a block of whole
    dates at a time (a date's context is its own)."""
    n = tagged.height
    vectors = np.empty((n, DIM), dtype=np.float32)
    nearest = np.empty(n, dtype=object)
    fragility = np.full(n, np.nan)
    keys = ["as_of_date", ENTITY, *(["issuer_id"] if "issuer_id" in tagged.columns else [])]
    numbered = tagged.select(keys).with_row_index("_t")
    dates = numbered["as_of_date"].unique().sort()
    for lo in range(0, len(dates), DATE_BLOCK):
        block = dates.slice(lo, DATE_BLOCK).implode()
        part = numbered.filter(pl.col("as_of_date").is_in(block))
        z_stab, blocks = _encoded_at(models, features, part, market, factors)
        rows = part["_t"].to_numpy()
        z_prof, has_prof = profiles_at(part, profiles)
        for joined in join_scenarios(
            models,
            scenarios,
            part["as_of_date"],
            z_stab,
            weights=weights,
            z_prof=z_prof,
            has_prof=has_prof,
            date_blocks=blocks,
        ):
            ids = joined.space.table["scenario_id"].to_numpy()
            at = rows[joined.rows]
            vectors[at] = joined.result.vectors
            nearest[at] = ids[joined.result.nearest]
            fragility[at] = joined.result.fragility
    return vectors, nearest, fragility


def model_space(
    models: Models,
    library: tuple[Scenario, ...],
    features: pl.DataFrame,
    tagged: pl.DataFrame,
    *,
    prices: Path | None,
    market: str | None,
    newest: dt.date,
    factors: dict[str, str] | None = None,
    max_staleness_days: int = MAX_STALENESS_DAYS,
    bad_tick: float = BAD_TICK_MULTIPLE,
    profiles: pl.DataFrame | None = None,
    profile_weight: float | None = None,
    name: str | None = None,
) -> Space:
    """Another joint model on the same states: encoded from the stored features of every
    state of their dates (a state's market context needs the whole date), joined with that
    model's point-in-time scenario space. Historical scenarios take their real reference
    paths from `prices`, as the build did; without prices, their synthetic stand-ins.
    `profiles` (read_profiles) joins the profile branch at `profile_weight` (default: the
    model's), point in time as a build does. `factors`: the build's declared factors (a
    factor model's context); `bad_tick`, the build's."""
    factors = (factors or {}) if models.joint.factors is not None else {}
    scenarios = _library(
        models,
        library,
        prices,
        market=market,
        factors=factors,
        max_staleness_days=max_staleness_days,
        bad_tick=bad_tick,
    )
    weights = dict(models.joint.weights)
    if profile_weight is not None:
        weights["prof"] = profile_weight
    vectors, nearest, fragility = _joined(
        models,
        scenarios,
        features,
        tagged,
        market=market,
        factors=factors,
        weights=weights,
        profiles=profiles,
    )
    library_then = scenarios.space(scenarios.key(newest))  # the build's newest library
    return Space(
        name or models.model_id,
        unit_rows(vectors),
        nearest,
        fragility,
        normalise(library_then.vectors.astype(np.float64))[0],
        library_then.table,
    )


def _library(
    models: Models,
    library: tuple[Scenario, ...],
    prices: Path | None,
    *,
    market: str | None,
    factors: dict[str, str],
    max_staleness_days: int,
    bad_tick: float,
) -> ScenarioLibrary:
    """The model's point-in-time scenario library as the build read it: real reference
    paths from `prices`, and each historical episode's market context on its last day
    (none without prices)."""
    refs, ticks = reference_prices(prices, library, bad_tick=bad_tick, also=tuple(factors.values()))
    config = (
        None
        if prices is None
        else BuildConfig(
            prices=prices, market=market, max_staleness_days=max_staleness_days, bad_tick=bad_tick
        )
    )
    return ScenarioLibrary(
        models,
        library,
        refs,
        max_staleness_days=max_staleness_days,
        reference_ticks=ticks,
        factors=factors,
        contexts=None if config is None else partial(episode_contexts, config, models),
    )


DATE_BLOCK = 26  # as-of dates encoded at a time: memory follows the block, not the history


def _encoded_at(
    models: Models,
    features: pl.DataFrame,
    part: pl.DataFrame,
    market: str | None,
    factors: dict[str, str] | None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """z_stab of the states `part` names, encoded with every state of their dates, and a
    factor model's date blocks (each of those states' row among them)."""
    keys = ["as_of_date", ENTITY]
    states = features.join(part.select("as_of_date").unique(), on="as_of_date", how="semi")
    encoded = encode_states(models, states, market=market)
    position = (
        part.select(keys)
        .join(states.select(keys).with_row_index("_i"), on=keys, how="left", maintain_order="left")
        .get_column("_i")
    )
    if position.null_count():
        raise LabelError("the features table lacks states that the joint table has")
    at = position.to_numpy()
    blocks = factor_blocks(models, states, factors=factors, market=market)
    return encoded.z_stab[at], None if blocks is None else (blocks[0], blocks[1][at])


VOL_BASELINES = ("vol_21", "vol_63")  # the one-number baselines every figure is given for


def vol_space(
    tagged: pl.DataFrame,
    table: pl.DataFrame,
    baseline: Baseline,
    library: tuple[Scenario, ...],
    column: str = "vol_21",
) -> Space:
    """One volatility alone (vol_21, vol_63): nearest scenario by the smallest difference
    of it, fragility = it."""
    scen_vol = synthetic_features(library, baseline).select("scenario_id", column)
    vol_scen = (
        table.select("scenario_id")
        .join(scen_vol, on="scenario_id", how="left", maintain_order="left")[column]
        .to_numpy()
    )
    vol = tagged[column].fill_null(np.nan).to_numpy()
    return _baseline(f"{column} alone", vol, vol_scen, table, distance=True, fragility=vol)


def original_space(
    prices: Path,
    tagged: pl.DataFrame,
    table: pl.DataFrame,
    baseline: Baseline,
    library: tuple[Scenario, ...],
) -> Space:
    """The design note's original encoder."""
    by_id = {s.id: s for s in library}
    scen = _raw_scenarios(tuple(by_id[i] for i in table["scenario_id"]), baseline)
    states = _raw_windows(prices, tagged)
    high = (table["severity"] == "HIGH").to_numpy()
    fragility = similarities(states, scen[high], distance=False).max(axis=1)
    return _baseline("original encoder", states, scen, table, distance=False, fragility=fragility)


def _baseline(
    name: str,
    states: np.ndarray,
    scen: np.ndarray,
    table: pl.DataFrame,
    *,
    distance: bool,
    fragility: np.ndarray,
) -> Space:
    sims = similarities(states, scen, distance=distance)
    nearest = table["scenario_id"].to_numpy()[
        np.nanargmax(np.nan_to_num(sims, nan=-np.inf), axis=1)
    ]
    return Space(name, states, nearest, fragility, scen, table, distance)


def _valid_prices(prices: Path, states: pl.DataFrame, days_before: int) -> pl.DataFrame:
    """Valid prices from `days_before` calendar days before the first state to the last,
    sorted by entity and date, with the log return `_r` (null on an entity's first row)."""
    first, last = date_span(states["as_of_date"])
    raw = read_prices(
        prices,
        where=pl.col(DATE).is_between(first - dt.timedelta(days=days_before), last),
    )
    return validate(raw, min_prices=0).prices.with_columns(
        (pl.col("close") / pl.col("close").shift(1)).log().over(ENTITY).alias("_r")
    )


def _latest(states: pl.DataFrame, frame: pl.DataFrame, column: str) -> pl.Series:
    """`column` at each state's entity's last row dated on or before the state's date, in
    the order of `states` (null where the entity has no such row)."""
    return as_of_join(states.select(ENTITY, "as_of_date"), frame.select(ENTITY, DATE, column))[
        column
    ]


def _raw_windows(prices: Path, states: pl.DataFrame) -> np.ndarray:
    """The original encoder: last 63 (close, volume, log return), flattened, zero-padded."""
    clean = _valid_prices(prices, states, 200).with_row_index(POS)
    pos = _latest(states, clean, POS).fill_null(0).cast(pl.Int64).to_numpy()
    idx = np.clip(pos[:, None] + np.arange(-RAW_WINDOW + 1, 1), 0, None)
    cols = [clean[c].fill_null(0.0).to_numpy() for c in ("close", "volume", "_r")]
    flat = np.concatenate([c[idx] for c in cols], axis=1)
    out = np.zeros((len(states), DIM), dtype=np.float32)
    out[:, : flat.shape[1]] = flat
    return unit_rows(out)


def exposure(prices: Path, states: pl.DataFrame, market: str) -> np.ndarray:
    """Each state's correlation with `market`: daily log returns over the last 252 days both
    traded, up to the state's date (NaN without 252 such days). Point in time, like the
    states: it says which entities a market-wide label is about on that date."""
    returns = _valid_prices(prices, states, EXPOSURE_WINDOW * 2).drop_nulls("_r")
    if returns.filter(pl.col(ENTITY) == market).height == 0:
        raise LabelError(f"{prices}: the market entity '{market}' has no valid prices")
    paired = (
        returns.join(
            returns.filter(pl.col(ENTITY) == market).select(DATE, pl.col("_r").alias("_m")),
            on=DATE,
        )
        .sort(ENTITY, DATE)
        .with_columns(
            pl.rolling_corr("_r", "_m", window_size=EXPOSURE_WINDOW).over(ENTITY).alias("_corr")
        )
    )
    return _latest(states, paired, "_corr").fill_nan(None).fill_null(np.nan).to_numpy()


def _raw_scenarios(library: tuple[Scenario, ...], baseline: Baseline) -> np.ndarray:
    rows = []
    for sc in library:
        path = synthesise_path(sc, baseline).tail(RAW_WINDOW)
        r = np.log(
            path["close"].to_numpy()
            / np.concatenate([[path["close"][0]], path["close"].to_numpy()[:-1]])
        )
        v = np.zeros(DIM)
        flat = np.concatenate([path["close"].to_numpy(), path["volume"].fill_null(0).to_numpy(), r])
        v[: len(flat)] = flat
        rows.append(v)
    return normalise(np.array(rows))[0]
