"""The feature plan: every feature of the registry at every row, one lazy plan per block.

The frame is sorted by (entity_id, date) and one lazy plan computes every entity and
every date at once. Windows count the entity's own observations and end at the row
itself: nothing looks past it.

Per-entity windows without a repartition: on the sorted frame a window of the last n
rows lies inside the entity exactly when the row's observation number within the entity
is at least n, so each window statistic runs over the whole column once and is kept only
where that holds (`within`). This equals `.over(entity_id)` and costs a fraction of it
(`.over()` regroups the column for every feature: about 0.6 s each on 12 million rows).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from stabfrag.features.exprs import (
    DV,
    LV,
    OBS,
    WANT,
    R,
    log_return,
    window_columns,
    within,
)
from stabfrag.features.registry import FEATURE_NAMES, FEATURE_SPECS, LOOKBACK_ROWS, FeatureSpec
from stabfrag.ingest.runs import entity_starts, observation_numbers
from stabfrag.schema import DATE, ENTITY, POS


def with_base_columns(prices: pl.LazyFrame) -> pl.LazyFrame:
    """Add the observation number (unless the frame has it), log return and volume helpers
    the features read."""
    if OBS not in prices.collect_schema():
        row = pl.int_range(pl.len(), dtype=pl.Int64)
        first = pl.col(ENTITY) != pl.col(ENTITY).shift(1)
        start = pl.when(first.fill_null(True)).then(row).forward_fill()
        prices = prices.with_columns((row - start + 1).alias(OBS))
    return prices.with_columns(
        within(log_return(1), 2).alias(R),
        pl.col("volume").log1p().alias(LV),
        (pl.col("close") * pl.col("volume")).alias(DV),
        # The earliest price any feature of this row reads (the stab_window start).
        pl.when(pl.col(OBS) > LOOKBACK_ROWS)
        .then(pl.col(DATE).shift(LOOKBACK_ROWS))
        .otherwise(pl.when(pl.col(OBS) == 1).then(pl.col(DATE)).forward_fill())
        .alias("window_start"),
        pl.lit(True).alias(WANT),
    )


def rolling_features(prices: pl.DataFrame, rows: np.ndarray | None = None) -> pl.DataFrame:
    """Every expression feature at every row, or at the positions `rows` alone (sorted,
    unique; the frame's rows in that order); `prices` is sorted by (entity_id, date)."""
    # Features that read other (already gated) features come in a second pass; the ones
    # they read are needed at other rows (lags), so they are computed at every row.
    read = {name for s in FEATURE_SPECS for name in s.reads}
    first = [s for s in FEATURE_SPECS if not s.reads]
    second = [_gated(s) for s in sorted(FEATURE_SPECS, key=lambda s: s.name) if s.reads]
    # Eager on one chunk per column: a lazy plan hands each window statistic its input in
    # 40-180 pieces, which the numpy hand-off then copies into one (8-15 % of the plan).
    base = with_base_columns(prices.lazy()).collect().rechunk()
    if rows is not None:  # the features others read, at the rows they are read at only
        lags = {s.lag for s in FEATURE_SPECS if s.reads}
        read_at = np.concatenate([rows - lag for lag in sorted(lags)])
        needed = np.zeros(base.height, dtype=bool)
        needed[read_at[read_at >= 0]] = True
        base = base.with_columns(pl.Series(WANT, needed))
    base = base.with_columns(_gated(s) for s in first if s.name in read)
    rest = [s for s in first if s.name not in read]
    if rows is None:
        return base.with_columns(_gated(s) for s in rest).with_columns(second)
    # The rest's window statistics and earlier values are columns over every row (the
    # statistics may skip unwanted rows); the arithmetic around them runs on the wanted
    # rows alone: the same operations on the same values, so the same bytes.
    want = np.zeros(base.height, dtype=bool)
    want[rows] = True
    with window_columns() as recorded:
        finish = [_gated(s) for s in rest]
    recorded.at = rows
    kept = (
        base.with_columns(pl.Series(WANT, want))
        .with_columns(second)
        .with_columns(recorded.columns.values())[rows]
    )
    return kept.with_columns(recorded.nulls()).with_columns(finish).drop(list(recorded.columns))


def _gated(spec: FeatureSpec) -> pl.Expr:
    return within(spec.build(), spec.min_obs).alias(spec.name)


FEATURE_BLOCK_ROWS = 2_000_000  # rows per plan: memory follows the block, not the panel


def compute_features(
    prices: pl.DataFrame, *, rows: np.ndarray | None = None, starts: np.ndarray | None = None
) -> pl.DataFrame:
    """Features at every row of `prices` (sorted by entity, date), or at the positions `rows`.
    `starts`, each entity's first row, is found from the ids when not given.

    Returns _pos (the row's position), entity_id, date, window_start, n_obs, every feature
    in FEATURE_NAMES order and features_null, the count of null features. A large frame
    is cut at entity boundaries into blocks of about FEATURE_BLOCK_ROWS rows, one lazy
    plan each: entities are independent, so the result is the same.
    """
    total = prices.height
    if starts is None:
        starts = entity_starts(prices[ENTITY])
    # The observation numbers from the runs: the ids' text is not compared again.
    prices = prices.with_columns(pl.Series(OBS, observation_numbers(starts, total)))
    if total <= FEATURE_BLOCK_ROWS:
        return _compute_block(prices, rows, offset=0)
    wanted = np.arange(FEATURE_BLOCK_ROWS, total, FEATURE_BLOCK_ROWS)
    cuts = np.unique(
        np.concatenate(
            [[0], starts[np.searchsorted(starts, wanted).clip(max=len(starts) - 1)], [total]]
        )
    )
    parts = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        block_rows = None if rows is None else rows[(rows >= lo) & (rows < hi)] - lo
        if block_rows is not None and len(block_rows) == 0:
            continue
        parts.append(_compute_block(prices.slice(lo, hi - lo), block_rows, offset=int(lo)))
    return pl.concat(parts) if parts else _compute_block(prices.head(0), None, offset=0)


def unique_rows(rows: np.ndarray) -> np.ndarray:
    """`rows` sorted, each once: np.unique's answer. np.unique hashes integers (numpy 2.3
    on): 0.1 s for 260,000 positions that a month-end chunk gives already sorted, against
    well under a millisecond for an order check and a comparison with the neighbour."""
    rows = np.asarray(rows)
    if len(rows) < 2:
        return rows.copy()
    if not (rows[1:] >= rows[:-1]).all():
        rows = np.sort(rows)
    return rows[np.r_[True, rows[1:] != rows[:-1]]]


def _compute_block(prices: pl.DataFrame, rows: np.ndarray | None, *, offset: int) -> pl.DataFrame:
    picked = None if rows is None else unique_rows(rows)  # in frame order, each row once
    rolled = rolling_features(prices, picked)
    at = np.arange(prices.height) if picked is None else picked
    frame = rolled.with_columns(pl.Series(POS, at + offset, dtype=pl.Int64))
    names = list(FEATURE_NAMES)
    return frame.select(
        POS,
        ENTITY,
        DATE,
        "window_start",
        # Prices in the state's window (window_start to date): no more than the look-back
        # reads, so the count does not depend on how far back a chunk's read went.
        pl.min_horizontal(pl.col(OBS), pl.lit(LOOKBACK_ROWS + 1)).cast(pl.Int32).alias("n_obs"),
        # A non-finite value (e.g. vol 0 in a ratio) is no value: null, never inf or NaN.
        *[pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n) for n in names],
    ).with_columns(
        pl.sum_horizontal(pl.col(n).is_null().cast(pl.Int32) for n in names)
        .cast(pl.Int32)
        .alias("features_null")
    )
