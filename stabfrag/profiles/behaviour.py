"""Behaviour traits from prices: the slow-moving structure of an entity, point in time.

Every trait reads the entity's last TRAIT_ROWS valid prices ending at the row (about two
years), through the same exact window kernels as the core features: a value depends only
on its own window, so nothing after the row is read and the look-back read does not
change it. A row with fewer prices than a trait's window has that trait null.

The market an entity's beta and correlation are measured against is a named market
entity, or the universe's median daily log return (an equal-weighted index of the
input). The second depends on which entities the input holds; a named market does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from stabfrag.features import kernels
from stabfrag.features.exprs import ANNUAL, LV, OBS, R, log_dollar_volume, window, within
from stabfrag.features.exprs import zero_volume_share as zero_share
from stabfrag.features.plan import with_base_columns
from stabfrag.schema import DATE, ENTITY

TRAIT_ROWS = 504  # two years of daily prices
VOL_ROWS = 21  # the short volatility whose own volatility is a trait
M = "_m"  # the market's log return over the row's return interval
LOG_VOL_FLOOR = 1e-8


@dataclass(frozen=True)
class Trait:
    """One behaviour trait: how it is built, the rows it needs and its transform."""

    name: str
    build: pl.Expr
    min_obs: int
    transform: str  # applied before the robust scaling (as the core features' transforms)
    definition: str


def _mean(expr: pl.Expr) -> pl.Expr:
    return window(expr, kernels.rolling_mean, TRAIT_ROWS)


def _moments() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(covariance of r with m, variance of m, variance of r) over the window (1/n)."""
    r, m = pl.col(R), pl.col(M)
    mean_r, mean_m = _mean(r), _mean(m)
    return _mean(r * m) - mean_r * mean_m, _mean(m * m) - mean_m**2, _mean(r * r) - mean_r**2


def _skew() -> pl.Expr:
    r = pl.col(R)
    m1, m2, m3 = _mean(r), _mean(r * r), _mean(r * r * r)
    var = m2 - m1**2
    return pl.when(var > 0).then((m3 - 3 * m1 * m2 + 2 * m1**3) / var.pow(1.5))


def _traits() -> tuple[Trait, ...]:
    cov, var_m, var_r = _moments()
    short_vol = window(pl.col(R), kernels.rolling_var, VOL_ROWS).sqrt() * math.sqrt(ANNUAL)
    log_short_vol = short_vol.clip(lower_bound=LOG_VOL_FLOOR).log()
    n = TRAIT_ROWS
    full = n + 1  # n returns need n + 1 prices
    return (
        Trait("beta", pl.when(var_m > 0).then(cov / var_m), full, "identity",
              "cov(r, m) / var(m) over the last 504 daily log returns r and the market's m"),
        Trait("market_corr", pl.when((var_m > 0) & (var_r > 0)).then(cov / (var_m * var_r).sqrt()),
              full, "identity", "correlation of r and m over the same 504 returns"),
        Trait("vol_504", window(pl.col(R), kernels.rolling_var, n).sqrt() * math.sqrt(ANNUAL),
              full, "log", "annualised sample std of the last 504 log returns"),
        Trait("vol_of_vol_504", window(log_short_vol, kernels.rolling_var, n).sqrt(),
              n + VOL_ROWS, "identity",
              "sample std of ln(annualised 21-day vol) over the last 504 rows"),
        Trait("worst_drawdown_504", window(pl.col("close"), kernels.max_drawdown, n), n,
              "identity", "min over s of close_s / max(close from the window start to s) - 1"),
        Trait("rows_since_peak_504", window(pl.col("close"), kernels.rows_since_max, n), n,
              "identity", "rows since the highest close of the last 504 (0 at a new high)"),
        Trait("skew_504", _skew(), full, "identity",
              "moment skewness (1/n moments) of the last 504 log returns"),
        Trait("log_dollar_volume_504", log_dollar_volume(n), n, "identity",
              "ln(mean close * volume over the last 504 rows)"),
        Trait("volume_instability_504", window(pl.col(LV), kernels.rolling_var, n).sqrt(), n,
              "identity", "sample std of ln(1 + volume) over the last 504 rows"),
        Trait("zero_volume_share_504", zero_share(n), n, "identity",
              "share of the last 504 rows with volume 0"),
        Trait("listing_age", pl.col(OBS).cast(pl.Float64), 1, "log1p",
              "valid prices of the entity up to and including the row"),
    )  # fmt: skip


TRAITS = _traits()
TRAIT_NAMES = tuple(t.name for t in TRAITS)


def market_closes(prices: pl.DataFrame, market: str | None) -> pl.DataFrame:
    """(date, _mclose): the named market's close, or an index of the median log return.

    `prices` are valid rows sorted by (entity_id, date) with the log return R.
    """
    if market is not None:
        return prices.filter(pl.col(ENTITY) == market).select(
            DATE, pl.col("close").alias("_mclose")
        )
    median = prices.group_by(DATE).agg(pl.col(R).median().fill_null(0.0)).sort(DATE)
    return median.select(DATE, pl.col(R).cum_sum().exp().alias("_mclose"))


def behaviour(prices: pl.DataFrame, *, market: str | None) -> pl.DataFrame:
    """Every trait at every row of valid `prices` (sorted by entity_id, date).

    Returns entity_id, date and the traits in TRAIT_NAMES order (null where a window is
    short or a value not finite). The market return of a row is over the same interval as
    the entity's own return: from its previous price's date to its date, the market's close
    taken as of each (a holiday of one is not a return of the other).
    """
    base = with_base_columns(prices.lazy().select(ENTITY, DATE, "close", "volume")).collect()
    closes = market_closes(base, market).sort(DATE)
    index = "_behaviour_i"
    mclose = (
        base.select(DATE).with_row_index(index).sort(DATE)
        .join_asof(closes, on=DATE, strategy="backward", check_sortedness=False)
        .sort(index)["_mclose"]
    )  # fmt: skip
    with_market = base.with_columns(mclose).with_columns(
        within((pl.col("_mclose") / pl.col("_mclose").shift(1)).log(), 2).alias(M)
    )
    traits = [within(t.build, t.min_obs).alias(t.name) for t in TRAITS]
    return (
        with_market.lazy()
        .with_columns(traits)
        .select(
            ENTITY,
            DATE,
            *[pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n) for n in TRAIT_NAMES],
        )
        .collect()
    )
