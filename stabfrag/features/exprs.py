"""Feature builders: small functions that return Polars expressions.

Each builder takes its input expression (or the column names of the base frame), so the same
feature serves prices, scenario paths and tests. Window statistics come from
stabfrag.features.kernels, whose every value depends only on its own window's values:
Polars' incremental rolling sums carry the rounding of earlier rows, so the same state read
with a different look-back would differ in the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from stabfrag.features import kernels

ANNUAL = 252

R = "_r"  # log return
OBS = "_obs"  # 1-based observation number within the entity
LV = "_lv"  # ln(1 + volume)
DV = "_dv"  # dollar volume close * volume
WANT = "_want"  # rows whose value is asked for: window statistics may skip the others


def within(expr: pl.Expr, rows: int) -> pl.Expr:
    """`expr` where the last `rows` rows all belong to the row's entity, else null."""
    return pl.when(pl.col(OBS) >= rows).then(expr)


@dataclass
class Recorded:
    """What window() and earlier() built while window_columns was open: columns to
    compute over every row (by name), and those of them whose NaN means null."""

    columns: dict[str, pl.Expr] = field(default_factory=dict)
    nan_is_null: list[str] = field(default_factory=list)
    # The WANT column's true positions, when the plan knows them: each statistic then
    # skips a scan of the whole mask (one per column per block).
    at: np.ndarray | None = None

    def add(self, column: pl.Expr, *, nan_is_null: bool) -> pl.Expr:
        name = f"_c{len(self.columns)}"
        self.columns[name] = column.alias(name)
        if nan_is_null:
            self.nan_is_null.append(name)
        return pl.col(name)

    def nulls(self) -> pl.Expr:
        """The window statistics as window() gives them outside window_columns."""
        return pl.col(self.nan_is_null).fill_nan(None)


_RECORDED: ContextVar[Recorded | None] = ContextVar("recorded_columns", default=None)


@contextmanager
def window_columns() -> Iterator[Recorded]:
    """While open, every part of an expression that reads other rows (window statistics,
    earlier values) is recorded as a column and stood for by pl.col(name). A plan then
    computes those columns over every row and the rest of each feature, row-local
    arithmetic, on the rows it keeps (after `Recorded.nulls`)."""
    recorded = Recorded()
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


def earlier(expr: pl.Expr, n: int) -> pl.Expr:
    """`expr` n rows earlier."""
    recorded = _RECORDED.get()
    shifted = expr.shift(n)
    return shifted if recorded is None else recorded.add(shifted, nan_is_null=False)


def window(expr: pl.Expr, stat: Callable[..., np.ndarray], *args: int) -> pl.Expr:
    """A window statistic of stabfrag.kernels over the whole column (not per window).

    Each value depends only on the values inside its own window, so a state's features are
    the same bytes whatever else was read with it. A null in the window gives null. Rows
    the frame's WANT column does not ask for may be null (the kernel may skip them).
    """
    recorded = _RECORDED.get()

    def run(inputs: Sequence[pl.Series]) -> pl.Series:
        series, want = inputs
        values = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        at: np.ndarray | None = None
        if recorded is not None and recorded.at is not None:
            at = recorded.at
        elif not want.all():
            at = want.arg_true().to_numpy()
        out = pl.Series(stat(values, *args, at=at), dtype=pl.Float64)
        return out if recorded is not None else out.fill_nan(None)

    column = pl.map_batches([expr, pl.col(WANT)], run, return_dtype=pl.Float64)
    return column if recorded is None else recorded.add(column, nan_is_null=True)


def realised_vol(n: int) -> pl.Expr:
    """Annualised sample std of the last n returns."""
    return window(pl.col(R), kernels.rolling_var, n).sqrt() * math.sqrt(ANNUAL)


def downside_vol(n: int) -> pl.Expr:
    """Annualised root mean square of the negative part of the last n returns."""
    neg = pl.col(R).clip(upper_bound=0.0)
    neg_sq = neg * neg
    return window(neg_sq, kernels.rolling_mean, n).sqrt() * math.sqrt(ANNUAL)


def log_return(n: int) -> pl.Expr:
    """ln(close_t / close_{t-n})."""
    return (pl.col("close") / earlier(pl.col("close"), n)).log()


def worst_return(n: int) -> pl.Expr:
    return window(pl.col(R), kernels.rolling_min, n)


def expected_shortfall(n: int, k: int) -> pl.Expr:
    """Mean of the k smallest of the last n returns."""
    return window(pl.col(R), kernels.smallest_mean, n, k)


def drawdown(n: int) -> pl.Expr:
    """close / max(close over the last n prices) - 1."""
    return pl.col("close") / window(pl.col("close"), kernels.rolling_max, n) - 1.0


def max_drawdown(n: int) -> pl.Expr:
    return window(pl.col("close"), kernels.max_drawdown, n)


def days_since_peak(n: int) -> pl.Expr:
    return window(pl.col("close"), kernels.rows_since_max, n)


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
    days = window(count, kernels.rolling_sum, n)
    return pl.when(days > 0).then(1e6 * window(ratio, kernels.rolling_sum, n) / days)


def log_dollar_volume(n: int) -> pl.Expr:
    mean_dv = window(pl.col(DV), kernels.rolling_mean, n)
    return pl.when(mean_dv > 0).then(mean_dv.log())


def volume_z(short: int, long: int) -> pl.Expr:
    lv = pl.col(LV)
    var = window(lv, kernels.rolling_var, long)
    diff = window(lv, kernels.rolling_mean, short) - window(lv, kernels.rolling_mean, long)
    return pl.when(var > 0).then(diff / var.sqrt())


def zero_volume_share(n: int) -> pl.Expr:
    return window((pl.col("volume") == 0).cast(pl.Float64), kernels.rolling_mean, n)


def parkinson_vol(n: int) -> pl.Expr:
    """Annualised Parkinson range volatility from high/low over the last n days."""
    log_range = (pl.col("high") / pl.col("low")).log()
    mean = window(log_range * log_range, kernels.rolling_mean, n)
    # Multiply by the reciprocal: Polars may divide a column by a scalar either way,
    # depending on its nulls, and the two differ in the last bit.
    return (mean * (1.0 / (4.0 * math.log(2.0)))).sqrt() * math.sqrt(ANNUAL)


def lagged(name: str, lag: int) -> pl.Expr:
    """The value `lag` observations earlier: the window's shape, not only its end."""
    return earlier(pl.col(name), lag)


def positive_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)
