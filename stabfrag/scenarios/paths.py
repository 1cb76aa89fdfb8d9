"""Scenario paths: a calm baseline then the shock, synthesised for all scenarios at once,
and the real reference paths of historical episodes; both go through the feature code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.asof.join import as_of_join
from stabfrag.config import MAX_STALENESS_DAYS
from stabfrag.features.plan import compute_features
from stabfrag.ingest.reasons import MIN_PRICES
from stabfrag.scenarios.library import BASE_VOL, Scenario
from stabfrag.schema import DATE, ENTITY, POS, PRICE_SCHEMA

BASELINE_DAYS = 400  # calm history before the shock: fills every window (294 rows + 63)
BASE_SPREAD = 150.0
PATH_END = dt.date(2000, 12, 29)  # synthetic paths carry dates only to order their rows


def _seed(scenario_id: str) -> int:
    return int(hashlib.sha256(scenario_id.encode()).hexdigest()[:16], 16)


def _shape_weights(shape: str, horizon: int) -> np.ndarray:
    """How the cumulative log move is spread over the horizon (sums to 1 for the net move)."""
    t = np.arange(horizon, dtype=np.float64)
    if shape == "front_loaded":
        w = np.exp(-t / max(horizon / 4.0, 1.0))
        return w / w.sum()
    if shape == "linear":
        return np.full(horizon, 1.0 / horizon)
    if shape == "gap":
        w = np.zeros(horizon)
        w[0] = 1.0
        return w
    # v_shape: the whole move down by the middle, then half of it back.
    mid = max(horizon // 2, 1)
    w = np.zeros(horizon)
    w[:mid] = 1.0 / mid
    w[mid:] = -0.5 / max(horizon - mid, 1)
    return w / w.sum()


def _standardised_noise(rng: np.random.Generator, n: int, block: int = 21) -> np.ndarray:
    """Gaussian noise with mean 0 and std 1 in every 21-day block counted back from the end.

    One random path would otherwise show a different move and volatility than the scenario
    describes (a calm path that happens to fall 5 % in its last month is not calm).
    """
    blocks = -(-n // block)
    eps = rng.standard_normal((blocks, block))
    eps = (eps - eps.mean(axis=1, keepdims=True)) / eps.std(axis=1, ddof=1, keepdims=True)
    return eps.ravel()[-n:]


@dataclass(frozen=True)
class Baseline:
    """The calm state a scenario path starts from: the calibration's median entity.

    Scenarios describe moves relative to normal; starting from the median volatility and
    dollar volume keeps level and size from separating scenarios from entity states.
    """

    vol: float = BASE_VOL
    dollar_volume: float = 1e7


def synthesise_path(sc: Scenario, baseline: Baseline) -> pl.DataFrame:
    """A calm baseline then the shock, as a prices frame for the feature code.

    The path is deterministic (seeded by the scenario id).
    """
    rng = np.random.default_rng(_seed(sc.id))
    h = sc.horizon_days
    n = BASELINE_DAYS + h
    dollar_volume = baseline.dollar_volume
    daily = baseline.vol / math.sqrt(252.0)
    sigma = np.full(n, daily)
    sigma[BASELINE_DAYS:] *= sc.vol_multiplier
    move = math.log1p(sc.price_shock)
    drift = np.full(n, 0.04 / 252)
    drift[BASELINE_DAYS:] = move * _shape_weights(sc.shape, h)
    ret = drift + sigma * _standardised_noise(rng, n)
    close = 100.0 * np.exp(np.cumsum(ret))
    vol_mult = np.ones(n)
    vol_mult[BASELINE_DAYS:] = sc.volume_multiplier
    volume = (dollar_volume / close) * np.exp(0.25 * rng.standard_normal(n)) * vol_mult
    zero = np.zeros(n, dtype=bool)
    zero[BASELINE_DAYS:] = rng.random(h) < sc.zero_volume_share
    volume = np.where(zero, 0.0, np.round(volume, 2))
    prev = np.concatenate([[close[0]], close[:-1]])
    opened = prev * np.exp(0.2 * sigma * rng.standard_normal(n))
    high = np.maximum(opened, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal(n)))
    low = np.minimum(opened, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(n)))
    has_spread = sc.spread_shock_bps != 0.0
    spread = BASE_SPREAD + sc.spread_shock_bps * np.concatenate(
        [np.zeros(BASELINE_DAYS), np.cumsum(_shape_weights(sc.shape, h))]
    )
    dates = pl.date_range(PATH_END - dt.timedelta(days=n - 1), PATH_END, eager=True)
    return pl.DataFrame(
        {
            ENTITY: sc.id,
            DATE: dates,
            "close": close,
            "volume": volume,
            "high": high,
            "low": low,
            "spread_bps": spread if has_spread else [None] * n,
        },
        schema=PRICE_SCHEMA,
    )


def synthetic_features(library: tuple[Scenario, ...], baseline: Baseline) -> pl.DataFrame:
    """Features at the end of every scenario's synthetic path: the SAME feature code as states."""
    paths = pl.concat([synthesise_path(sc, baseline) for sc in library])
    order = {sc.id: i for i, sc in enumerate(library)}
    paths = paths.sort(ENTITY, DATE)
    last = paths.with_row_index("i").group_by(ENTITY).agg(pl.col("i").max())["i"].sort()
    feats = compute_features(paths, rows=last.to_numpy())
    return (
        feats.with_columns(
            pl.col(ENTITY).alias("scenario_id"),
            pl.col(ENTITY).replace_strict(order, return_dtype=pl.Int64).alias("_order"),
            pl.lit("synthetic").alias("path_source"),
        )
        .sort("_order")
        .drop("_order")
    )


FACTOR_SEP = "|"  # an observed factor path's id: SCENARIO|ROLE


def factor_scenario(sc: Scenario, role: str, entity: str) -> Scenario:
    """`sc` with `entity`, the build's series of one factor, as its reference: that
    factor's observed path over the episode."""
    return dataclasses.replace(sc, id=f"{sc.id}{FACTOR_SEP}{role}", reference_entity=entity)


def factor_reference_features(
    library: tuple[Scenario, ...],
    prices: pl.DataFrame,
    factors: dict[str, str],
    *,
    max_staleness_days: int = MAX_STALENESS_DAYS,
) -> pl.DataFrame:
    """The declared factors' observed states over each historical episode (as
    reference_features gives a reference entity's): scenario_id, role, _end, features."""
    derived = tuple(
        factor_scenario(sc, role, entity)
        for sc in library
        if sc.kind == "historical"
        for role, entity in factors.items()
    )
    feats = reference_features(derived, prices, max_staleness_days=max_staleness_days)
    if feats.height == 0:
        return feats
    parts = pl.col("scenario_id").str.split_exact(FACTOR_SEP, 1)  # SCENARIO|ROLE
    return feats.with_columns(
        parts.struct.field("field_0").alias("scenario_id"),
        parts.struct.field("field_1").alias("role"),
    )


def reference_features(
    library: tuple[Scenario, ...],
    prices: pl.DataFrame,
    *,
    max_staleness_days: int = MAX_STALENESS_DAYS,
) -> pl.DataFrame:
    """Features of each historical scenario's reference entity on every trading day of its
    episode (`_end` marks the last): a scenario is its episode's observed states, not one
    day's snapshot.

    `prices` is validated and sorted. A scenario qualifies when its reference covers the
    whole episode (a price on or before the start, one within the staleness limit of the
    end) and has a full 63-return window at the end; days of the episode without a full
    window are left out.
    """
    hist = [s for s in library if s.kind == "historical" and s.reference_entity]
    if not hist or prices.height == 0:
        return pl.DataFrame()
    episodes = pl.DataFrame(
        {
            "scenario_id": [s.id for s in hist],
            ENTITY: [s.reference_entity for s in hist],
            "episode_start": [s.episode_start for s in hist],
            "episode_end": [s.episode_end for s in hist],
        }
    ).sort("episode_end")
    indexed = prices.with_row_index(POS).select(
        POS,
        ENTITY,
        DATE,
        pl.col(DATE).min().over(ENTITY).alias("_first"),
        (pl.int_range(pl.len()).over(ENTITY) + 1).alias("_obs"),
    )
    matched = as_of_join(
        episodes, indexed, left_on="episode_end", max_days=max_staleness_days
    ).filter(
        pl.col(POS).is_not_null()
        & (pl.col("_first") <= pl.col("episode_start"))
        & (pl.col("_obs") >= MIN_PRICES)
    )
    if matched.height == 0:
        return pl.DataFrame()
    days = (
        matched.select("scenario_id", ENTITY, "episode_start", pl.col(POS).alias("_last"))
        .join(indexed.select(POS, ENTITY, DATE, "_obs"), on=ENTITY)
        .filter(
            (pl.col(DATE) >= pl.col("episode_start"))
            & (pl.col(POS) <= pl.col("_last"))
            & (pl.col("_obs") >= MIN_PRICES)
        )
        .select("scenario_id", POS, (pl.col(POS) == pl.col("_last")).alias("_end"))
        .sort("scenario_id", POS)
    )
    feats = compute_features(prices, rows=days[POS].unique().sort().to_numpy())
    return days.join(feats, on=POS, how="left").with_columns(
        pl.format("reference:{}", pl.col(ENTITY)).alias("path_source")
    )
