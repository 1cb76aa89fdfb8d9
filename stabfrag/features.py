"""Feature set stab-features-v1: small functions returning Polars expressions.

Every expression runs over a frame sorted by (entity_id, date) with `.over(ENTITY)`,
so one lazy plan computes every entity and every date at once. Windows count the
entity's own observations and end at the row itself: nothing looks past it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

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
    """One feature: its name, window, encoder transform and one-line definition."""

    name: str
    window: int
    transform: str  # identity | log | log1p | slog1p
    doc: str


def _over(expr: pl.Expr) -> pl.Expr:
    return expr.over(ENTITY)


def realised_vol(n: int) -> pl.Expr:
    """Annualised sample std of the last n returns; null until n are seen."""
    return _over(pl.col(R).rolling_std(n, min_samples=n, ddof=1)) * math.sqrt(ANNUAL)


def downside_vol(n: int) -> pl.Expr:
    """Annualised root mean square of the negative part of the last n returns."""
    neg_sq = pl.col(R).clip(upper_bound=0.0) ** 2
    return _over(neg_sq.rolling_mean(n, min_samples=n)).sqrt() * math.sqrt(ANNUAL)


def log_return(n: int) -> pl.Expr:
    """ln(close_t / close_{t-n})."""
    return _over((pl.col("close") / pl.col("close").shift(n)).log())


def worst_return(n: int) -> pl.Expr:
    return _over(pl.col(R).rolling_min(n, min_samples=n))


def expected_shortfall(n: int, k: int) -> pl.Expr:
    """Mean of the k smallest of the last n returns.

    The i-th order statistic is the `lower` quantile at i/(n-1): no Python callback.
    """
    order_stats = [
        _over(
            pl.col(R).rolling_quantile(
                quantile=i / (n - 1), interpolation="lower", window_size=n, min_samples=n
            )
        )
        for i in range(k)
    ]
    # `+`, not sum_horizontal: a null order statistic must make the mean null.
    total = order_stats[0]
    for stat in order_stats[1:]:
        total = total + stat
    return total / k


def drawdown(n: int) -> pl.Expr:
    """close / max(close over the last n prices) - 1."""
    return pl.col("close") / _over(pl.col("close").rolling_max(n, min_samples=n)) - 1.0


def amihud(n: int) -> pl.Expr:
    """1e6 * mean of |r| / dollar volume over the days of the last n with dollar volume > 0.

    A window holding an unknown volume is null: the null propagates through rolling_sum.
    """
    known = pl.col("volume").is_not_null()
    traded = pl.col(DV) > 0
    ratio = (
        pl.when(~known | pl.col(R).is_null())
        .then(None)
        .when(traded)
        .then(pl.col(R).abs() / pl.col(DV))
    )
    ratio = ratio.otherwise(0.0)
    # The return must exist too, so the count is null wherever the ratio is.
    count = pl.when(ratio.is_null()).then(None).otherwise(traded.cast(pl.Float64))
    total = _over(ratio.rolling_sum(n, min_samples=n))
    days = _over(count.rolling_sum(n, min_samples=n))
    return pl.when(days > 0).then(1e6 * total / days)


def log_dollar_volume(n: int) -> pl.Expr:
    mean_dv = _over(pl.col(DV).rolling_mean(n, min_samples=n))
    return pl.when(mean_dv > 0).then(mean_dv.log())


def volume_z(short: int, long: int) -> pl.Expr:
    lv = pl.col(LV)
    sd = _over(lv.rolling_std(long, min_samples=long, ddof=1))
    diff = _over(lv.rolling_mean(short, min_samples=short)) - _over(
        lv.rolling_mean(long, min_samples=long)
    )
    return pl.when(sd > 0).then(diff / sd)


def zero_volume_share(n: int) -> pl.Expr:
    return _over((pl.col("volume") == 0).cast(pl.Float64).rolling_mean(n, min_samples=n))


def parkinson_vol(n: int) -> pl.Expr:
    """Annualised Parkinson range volatility from high/low over the last n days."""
    hl2 = (pl.col("high") / pl.col("low")).log() ** 2
    mean = _over(hl2.rolling_mean(n, min_samples=n))
    return (mean / (4.0 * math.log(2.0))).sqrt() * math.sqrt(ANNUAL)


def lagged(expr: pl.Expr, lag: int) -> pl.Expr:
    """The value `lag` observations earlier: the window's shape, not only its end."""
    return _over(expr.shift(lag))


def _positive_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)


Builder = Callable[[], pl.Expr]

# name -> (spec, builder). The registry is the feature set: pipeline, docs and hash read it.
_VOLS = {f"vol_{n}": n for n in (21, 63, 252)}
REGISTRY: dict[str, tuple[FeatureSpec, Builder]] = {
    **{
        name: (
            FeatureSpec(name, n, "log", f"std(r over the last {n} returns) * sqrt(252)"),
            (lambda n=n: realised_vol(n)),
        )
        for name, n in _VOLS.items()
    },
    "vol_ratio_21_252": (
        FeatureSpec("vol_ratio_21_252", 252, "log", "vol_21 / vol_252"),
        lambda: _positive_ratio(realised_vol(21), realised_vol(252)),
    ),
    "downside_vol_63": (
        FeatureSpec("downside_vol_63", 63, "log", "sqrt(mean(min(r, 0)^2) over 63) * sqrt(252)"),
        lambda: downside_vol(63),
    ),
    **{
        f"ret_{n}": (
            FeatureSpec(f"ret_{n}", n, "identity", f"ln(close_t / close_(t-{n}))"),
            (lambda n=n: log_return(n)),
        )
        for n in (21, 63)
    },
    "worst_ret_63": (
        FeatureSpec("worst_ret_63", 63, "identity", "min r over 63"),
        lambda: worst_return(63),
    ),
    "es95_63": (
        FeatureSpec("es95_63", 63, "identity", f"mean of the {ES_K} smallest r over 63"),
        lambda: expected_shortfall(63, ES_K),
    ),
    "dd_252": (
        FeatureSpec("dd_252", 252, "identity", "close_t / max(close over the last 252 prices) - 1"),
        lambda: drawdown(252),
    ),
    "amihud_63": (
        FeatureSpec(
            "amihud_63",
            63,
            "slog1p",
            "1e6 * mean over the last 63 days with close*volume > 0 of abs(r) / (close*volume)",
        ),
        lambda: amihud(63),
    ),
    "log_dollar_vol_63": (
        FeatureSpec("log_dollar_vol_63", 63, "identity", "ln(mean(close*volume) over 63 days)"),
        lambda: log_dollar_volume(63),
    ),
    "volume_z_21_252": (
        FeatureSpec(
            "volume_z_21_252",
            252,
            "identity",
            "(mean ln(1+volume) over 21 - mean over 252) / std over 252",
        ),
        lambda: volume_z(21, 252),
    ),
    "zero_volume_frac_63": (
        FeatureSpec(
            "zero_volume_frac_63", 63, "identity", "share of the last 63 days with volume = 0"
        ),
        lambda: zero_volume_share(63),
    ),
    **{
        f"vol_21_lag{lag}": (
            FeatureSpec(
                f"vol_21_lag{lag}", 21 + lag, "log", f"vol_21 as of {lag} observations earlier"
            ),
            (lambda lag=lag: lagged(pl.col("vol_21"), lag)),
        )
        for lag in (21, 42)
    },
    **{
        f"dd_252_lag{lag}": (
            FeatureSpec(
                f"dd_252_lag{lag}",
                252 + lag,
                "identity",
                f"dd_252 as of {lag} observations earlier",
            ),
            (lambda lag=lag: lagged(pl.col("dd_252"), lag)),
        )
        for lag in (21, 42)
    },
    "parkinson_vol_21": (
        FeatureSpec(
            "parkinson_vol_21",
            21,
            "log",
            "sqrt(mean(ln(high/low)^2) over 21 / (4 ln 2)) * sqrt(252); needs high and low",
        ),
        lambda: parkinson_vol(21),
    ),
    "spread_bps": (
        FeatureSpec("spread_bps", 1, "slog1p", "credit spread level in bps; needs spread_bps"),
        lambda: pl.col("spread_bps"),
    ),
    "spread_chg_21": (
        FeatureSpec("spread_chg_21", 21, "slog1p", "spread_bps_t - spread_bps_(t-21)"),
        lambda: _over(pl.col("spread_bps") - pl.col("spread_bps").shift(21)),
    ),
}

# Path-dependent window statistics with no rolling form: numpy kernels, run only at the
# rows asked for.
KERNEL_SPECS = (
    FeatureSpec(
        "max_dd_63",
        63,
        "identity",
        "min over s in the last 63 prices of close_s / max(close from window start to s) - 1",
    ),
    FeatureSpec(
        "days_since_peak_252",
        252,
        "log1p",
        "observations since the latest max of the last 252 prices (0 at a new high)",
    ),
)

# Expressions that read other features are evaluated in a second pass.
_SECOND_PASS = {"vol_21_lag21", "vol_21_lag42", "dd_252_lag21", "dd_252_lag42"}

FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    *(spec for spec, _ in REGISTRY.values()),
    *KERNEL_SPECS,
)
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
    """Add the log return, observation number and volume helpers the features read."""
    return prices.with_columns(
        _over((pl.col("close") / pl.col("close").shift(1)).log()).alias(R),
        (pl.int_range(pl.len(), dtype=pl.Int64).over(ENTITY) + 1).alias(OBS),
        pl.col("volume").log1p().alias(LV),
        (pl.col("close") * pl.col("volume")).alias(DV),
        # The earliest price any feature of this row reads (the stab_window start).
        _over(pl.col(DATE).shift(LOOKBACK_ROWS))
        .fill_null(pl.col(DATE).first().over(ENTITY))
        .alias("window_start"),
    )


def rolling_features(prices: pl.LazyFrame) -> pl.LazyFrame:
    """Every expression feature at every row; `prices` is sorted by (entity_id, date)."""
    first = [b().alias(n) for n, (_, b) in REGISTRY.items() if n not in _SECOND_PASS]
    second = [b().alias(n) for n, (_, b) in REGISTRY.items() if n in _SECOND_PASS]
    return with_base_columns(prices).with_columns(first).with_columns(second)


def _windows(values: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """Gather the n values ending at each position of `ends` into an (len(ends), n) array."""
    return values[ends[:, None] + np.arange(-n + 1, 1)]


def max_drawdown_at(close: np.ndarray, ends: np.ndarray, n: int, chunk: int = 65536) -> np.ndarray:
    """Max drawdown inside the n-price window ending at each position (caller checks fullness)."""
    out = np.empty(len(ends))
    for lo in range(0, len(ends), chunk):  # bounded memory: chunks of rows, not a row loop
        w = _windows(close, ends[lo : lo + chunk], n)
        out[lo : lo + chunk] = (w / np.maximum.accumulate(w, axis=1) - 1.0).min(axis=1)
    return out


def days_since_peak_at(
    close: np.ndarray, ends: np.ndarray, n: int, chunk: int = 65536
) -> np.ndarray:
    """Observations since the latest maximum of the n-price window ending at each position."""
    out = np.empty(len(ends))
    for lo in range(0, len(ends), chunk):
        w = _windows(close, ends[lo : lo + chunk], n)
        # argmax of the reversed window finds the latest maximum.
        out[lo : lo + chunk] = np.argmax(w[:, ::-1], axis=1)
    return out


def kernel_features(close: np.ndarray, obs: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Path features at `rows` (positions in the sorted frame); null (NaN) where not full.

    `obs` is the observation number at each of `rows`.
    """
    out: dict[str, np.ndarray] = {}
    kernels = {"max_dd_63": max_drawdown_at, "days_since_peak_252": days_since_peak_at}
    for spec in KERNEL_SPECS:
        full = obs >= spec.window
        values = np.full(len(rows), np.nan)
        values[full] = kernels[spec.name](close, rows[full], spec.window)
        out[spec.name] = values
    return out


def compute_features(prices: pl.DataFrame, *, rows: np.ndarray | None = None) -> pl.DataFrame:
    """Features at every row of `prices` (sorted by entity, date), or at the positions `rows`.

    Returns _pos (the row's position), entity_id, date, window_start, n_obs, every feature
    in FEATURE_NAMES order and features_null, the count of null features.
    """
    rolled = rolling_features(prices.lazy()).with_row_index("_pos")
    if rows is not None:
        rolled = rolled.filter(pl.col("_pos").is_in(pl.Series(rows).cast(pl.UInt32)))
    frame = rolled.collect()
    close = prices["close"].to_numpy()
    positions = frame["_pos"].to_numpy().astype(np.int64)
    kernels = kernel_features(close, frame[OBS].to_numpy(), positions)
    frame = frame.with_columns(
        pl.Series(name, values, dtype=pl.Float64).fill_nan(None) for name, values in kernels.items()
    )
    names = list(FEATURE_NAMES)
    return frame.select(
        pl.col("_pos").cast(pl.Int64),
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
