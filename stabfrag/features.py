"""Feature set stab-features-v1: small functions returning Polars expressions.

The frame is sorted by (entity_id, date) and one lazy plan computes every entity and
every date at once. Windows count the entity's own observations and end at the row
itself: nothing looks past it.

Per-entity windows without a repartition: on the sorted frame a window of the last n
rows lies inside the entity exactly when the row's observation number within the entity
is at least n, so each window statistic runs over the whole column once and is kept only
where that holds (`within`). This equals `.over(entity_id)` and costs a fraction of it
(`.over()` regroups the column for every feature: about 0.6 s each on 12 million rows).

Window statistics come from stabfrag.kernels, whose every value depends only on its own
window's values: Polars' incremental rolling sums carry the rounding of earlier rows, so
the same state read with a different look-back would differ in the last bit.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import polars as pl

from stabfrag import kernels
from stabfrag.schema import DATE, ENTITY

FEATURE_SET = "stab-features-v1"
ANNUAL = 252
ES_K = math.ceil(0.05 * 63)  # es95_63 averages the 4 smallest of 63 returns
LOOKBACK_ROWS = 252 + 42  # dd_252_lag42 reads the furthest back: 294 rows before the row

R = "_r"  # log return
OBS = "_obs"  # 1-based observation number within the entity
LV = "_lv"  # ln(1 + volume)
DV = "_dv"  # dollar volume close * volume


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: name, rows it needs, encoder transform and one-line definition."""

    name: str
    min_obs: int  # observations (prices) the entity needs before the value exists
    transform: str  # identity | log | log1p | slog1p
    doc: str


def within(expr: pl.Expr, rows: int) -> pl.Expr:
    """`expr` where the last `rows` rows all belong to the row's entity, else null."""
    return pl.when(pl.col(OBS) >= rows).then(expr)


def _window(expr: pl.Expr, stat: Callable[..., np.ndarray], *args: int) -> pl.Expr:
    """A window statistic of stabfrag.kernels over the whole column (not per window).

    Each value depends only on the values inside its own window, so a state's features are
    the same bytes whatever else was read with it. A null in the window gives null.
    """

    def run(series: pl.Series) -> pl.Series:
        values = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        return pl.Series(stat(values, *args), dtype=pl.Float64).fill_nan(None)

    return expr.map_batches(run, return_dtype=pl.Float64)


def realised_vol(n: int) -> pl.Expr:
    """Annualised sample std of the last n returns."""
    return _window(pl.col(R), kernels.rolling_var, n).sqrt() * math.sqrt(ANNUAL)


def downside_vol(n: int) -> pl.Expr:
    """Annualised root mean square of the negative part of the last n returns."""
    neg = pl.col(R).clip(upper_bound=0.0)
    neg_sq = neg * neg
    return _window(neg_sq, kernels.rolling_mean, n).sqrt() * math.sqrt(ANNUAL)


def log_return(n: int) -> pl.Expr:
    """ln(close_t / close_{t-n})."""
    return (pl.col("close") / pl.col("close").shift(n)).log()


def worst_return(n: int) -> pl.Expr:
    return _window(pl.col(R), kernels.rolling_min, n)


def expected_shortfall(n: int, k: int) -> pl.Expr:
    """Mean of the k smallest of the last n returns."""
    return _window(pl.col(R), kernels.smallest_mean, n, k)


def drawdown(n: int) -> pl.Expr:
    """close / max(close over the last n prices) - 1."""
    return pl.col("close") / _window(pl.col("close"), kernels.rolling_max, n) - 1.0


def max_drawdown(n: int) -> pl.Expr:
    return _window(pl.col("close"), kernels.max_drawdown, n)


def days_since_peak(n: int) -> pl.Expr:
    return _window(pl.col("close"), kernels.rows_since_max, n)


def amihud(n: int) -> pl.Expr:
    """1e6 * mean of |r| / dollar volume over the days of the last n with dollar volume > 0.

    A window holding an unknown volume is null: the null propagates through the sum.
    """
    unknown = pl.col("volume").is_null() | pl.col(R).is_null()
    traded = pl.col(DV) > 0
    ratio = (
        pl.when(unknown).then(None).when(traded).then(pl.col(R).abs() / pl.col(DV)).otherwise(0.0)
    )
    count = pl.when(unknown).then(None).otherwise(traded.cast(pl.Float64))
    days = _window(count, kernels.rolling_sum, n)
    return pl.when(days > 0).then(1e6 * _window(ratio, kernels.rolling_sum, n) / days)


def log_dollar_volume(n: int) -> pl.Expr:
    mean_dv = _window(pl.col(DV), kernels.rolling_mean, n)
    return pl.when(mean_dv > 0).then(mean_dv.log())


def volume_z(short: int, long: int) -> pl.Expr:
    lv = pl.col(LV)
    var = _window(lv, kernels.rolling_var, long)
    diff = _window(lv, kernels.rolling_mean, short) - _window(lv, kernels.rolling_mean, long)
    return pl.when(var > 0).then(diff / var.sqrt())


def zero_volume_share(n: int) -> pl.Expr:
    return _window((pl.col("volume") == 0).cast(pl.Float64), kernels.rolling_mean, n)


def parkinson_vol(n: int) -> pl.Expr:
    """Annualised Parkinson range volatility from high/low over the last n days."""
    log_range = (pl.col("high") / pl.col("low")).log()
    mean = _window(log_range * log_range, kernels.rolling_mean, n)
    # Multiply by the reciprocal: Polars may divide a column by a scalar either way,
    # depending on its nulls, and the two differ in the last bit.
    return (mean * (1.0 / (4.0 * math.log(2.0)))).sqrt() * math.sqrt(ANNUAL)


def lagged(name: str, lag: int) -> pl.Expr:
    """The value `lag` observations earlier: the window's shape, not only its end."""
    return pl.col(name).shift(lag)


def _positive_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)


Builder = Callable[[], pl.Expr]


def _spec(name: str, min_obs: int, transform: str, doc: str, build: Builder) -> tuple:  # type: ignore[type-arg]
    return name, (FeatureSpec(name, min_obs, transform, doc), build)


# name -> (spec, builder). The registry is the feature set: pipeline, docs and hash read it.
# min_obs: n returns need n + 1 prices; n prices need n.
REGISTRY: dict[str, tuple[FeatureSpec, Builder]] = dict(
    [
        *[
            _spec(
                f"vol_{n}",
                n + 1,
                "log",
                f"std(r over the last {n} returns) * sqrt(252)",
                partial(realised_vol, n),
            )
            for n in (21, 63, 252)
        ],
        _spec(
            "vol_ratio_21_252",
            253,
            "log",
            "vol_21 / vol_252",
            lambda: _positive_ratio(pl.col("vol_21"), pl.col("vol_252")),
        ),
        _spec(
            "downside_vol_63",
            64,
            "log",
            "sqrt(mean(min(r, 0)^2) over 63) * sqrt(252)",
            lambda: downside_vol(63),
        ),
        *[
            _spec(
                f"ret_{n}",
                n + 1,
                "identity",
                f"ln(close_t / close_(t-{n}))",
                partial(log_return, n),
            )
            for n in (21, 63)
        ],
        _spec("worst_ret_63", 64, "identity", "min r over 63", lambda: worst_return(63)),
        _spec(
            "es95_63",
            64,
            "identity",
            f"mean of the {ES_K} smallest r over 63",
            lambda: expected_shortfall(63, ES_K),
        ),
        _spec(
            "dd_252",
            252,
            "identity",
            "close_t / max(close over the last 252 prices) - 1",
            lambda: drawdown(252),
        ),
        _spec(
            "max_dd_63",
            63,
            "identity",
            "min over s in the last 63 prices of close_s / max(close from window start to s) - 1",
            lambda: max_drawdown(63),
        ),
        _spec(
            "days_since_peak_252",
            252,
            "log1p",
            "observations since the latest max of the last 252 prices (0 at a new high)",
            lambda: days_since_peak(252),
        ),
        _spec(
            "amihud_63",
            64,
            "slog1p",
            "1e6 * mean over the last 63 days with close*volume > 0 of abs(r) / (close*volume)",
            lambda: amihud(63),
        ),
        _spec(
            "log_dollar_vol_63",
            63,
            "identity",
            "ln(mean(close*volume) over 63 days)",
            lambda: log_dollar_volume(63),
        ),
        _spec(
            "volume_z_21_252",
            252,
            "identity",
            "(mean ln(1+volume) over 21 - mean over 252) / std over 252",
            lambda: volume_z(21, 252),
        ),
        _spec(
            "zero_volume_frac_63",
            63,
            "identity",
            "share of the last 63 days with volume = 0",
            lambda: zero_volume_share(63),
        ),
        *[
            _spec(
                f"{base}_lag{lag}",
                lag + 1,
                transform,
                f"{base} as of {lag} observations earlier",
                partial(lagged, base, lag),
            )
            for base, transform in (("vol_21", "log"), ("dd_252", "identity"))
            for lag in (21, 42)
        ],
        _spec(
            "parkinson_vol_21",
            21,
            "log",
            "sqrt(mean(ln(high/low)^2) over 21 / (4 ln 2)) * sqrt(252); needs high and low",
            lambda: parkinson_vol(21),
        ),
        _spec(
            "spread_bps",
            1,
            "slog1p",
            "credit spread level in bps; needs spread_bps",
            lambda: pl.col("spread_bps"),
        ),
        _spec(
            "spread_chg_21",
            22,
            "slog1p",
            "spread_bps_t - spread_bps_(t-21)",
            lambda: pl.col("spread_bps") - pl.col("spread_bps").shift(21),
        ),
    ]
)


# Features that read other (already gated) features come in a second pass.
_SECOND_PASS = {n for n in REGISTRY if "_lag" in n} | {"vol_ratio_21_252"}

FEATURE_SPECS: tuple[FeatureSpec, ...] = tuple(spec for spec, _ in REGISTRY.values())
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURE_SPECS)


def feature_set_hash() -> str:
    """sha256 of the canonical JSON of every spec: changes whenever a definition does."""
    payload = json.dumps(
        {"feature_set": FEATURE_SET, "specs": [asdict(s) for s in FEATURE_SPECS]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def with_base_columns(prices: pl.LazyFrame) -> pl.LazyFrame:
    """Add the observation number, log return and volume helpers the features read."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    first = pl.col(ENTITY) != pl.col(ENTITY).shift(1)
    start = pl.when(first.fill_null(True)).then(row).forward_fill()
    return prices.with_columns((row - start + 1).alias(OBS)).with_columns(
        within(log_return(1), 2).alias(R),
        pl.col("volume").log1p().alias(LV),
        (pl.col("close") * pl.col("volume")).alias(DV),
        # The earliest price any feature of this row reads (the stab_window start).
        pl.when(pl.col(OBS) > LOOKBACK_ROWS)
        .then(pl.col(DATE).shift(LOOKBACK_ROWS))
        .otherwise(pl.when(pl.col(OBS) == 1).then(pl.col(DATE)).forward_fill())
        .alias("window_start"),
    )


def rolling_features(prices: pl.LazyFrame) -> pl.LazyFrame:
    """Every expression feature at every row; `prices` is sorted by (entity_id, date)."""
    specs = {n: s for n, (s, _) in REGISTRY.items()}
    first = [
        within(b(), specs[n].min_obs).alias(n)
        for n, (_, b) in REGISTRY.items()
        if n not in _SECOND_PASS
    ]
    second = [within(REGISTRY[n][1](), specs[n].min_obs).alias(n) for n in sorted(_SECOND_PASS)]
    return with_base_columns(prices).with_columns(first).with_columns(second)


FEATURE_BLOCK_ROWS = 2_000_000  # rows per plan: memory follows the block, not the panel


def compute_features(prices: pl.DataFrame, *, rows: np.ndarray | None = None) -> pl.DataFrame:
    """Features at every row of `prices` (sorted by entity, date), or at the positions `rows`.

    Returns _pos (the row's position), entity_id, date, window_start, n_obs, every feature
    in FEATURE_NAMES order and features_null, the count of null features. A large frame
    is cut at entity boundaries into blocks of about FEATURE_BLOCK_ROWS rows, one lazy
    plan each: entities are independent, so the result is the same.
    """
    total = prices.height
    if total <= FEATURE_BLOCK_ROWS:
        return _compute_block(prices, rows, offset=0)
    ids = prices[ENTITY]
    starts = np.flatnonzero((ids != ids.shift(1)).fill_null(True).to_numpy())
    wanted = np.arange(FEATURE_BLOCK_ROWS, total, FEATURE_BLOCK_ROWS)
    cuts = np.unique(
        np.concatenate(
            [[0], starts[np.searchsorted(starts, wanted).clip(max=len(starts) - 1)], [total]]
        )
    )
    parts = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):  # a few blocks of whole entities
        block_rows = None if rows is None else rows[(rows >= lo) & (rows < hi)] - lo
        if block_rows is not None and len(block_rows) == 0:
            continue
        parts.append(_compute_block(prices.slice(lo, hi - lo), block_rows, offset=int(lo)))
    return pl.concat(parts) if parts else _compute_block(prices.head(0), None, offset=0)


def _compute_block(prices: pl.DataFrame, rows: np.ndarray | None, *, offset: int) -> pl.DataFrame:
    rolled = rolling_features(prices.lazy()).with_row_index("_pos")
    if rows is not None:
        rolled = rolled.filter(pl.col("_pos").is_in(pl.Series(rows).cast(pl.UInt32).implode()))
    frame = rolled.with_columns(pl.col("_pos").cast(pl.Int64) + offset).collect()
    names = list(FEATURE_NAMES)
    return frame.select(
        "_pos",
        ENTITY,
        DATE,
        "window_start",
        pl.col(OBS).cast(pl.Int32).alias("n_obs"),
        # A non-finite value (e.g. vol 0 in a ratio) is no value: null, never inf or NaN.
        *[pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n) for n in names],
    ).with_columns(
        pl.sum_horizontal(pl.col(n).is_null().cast(pl.Int32) for n in names)
        .cast(pl.Int32)
        .alias("features_null")
    )
