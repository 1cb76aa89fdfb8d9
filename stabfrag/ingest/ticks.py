"""The bad-tick rule: a close no market traded at, judged against the entity's own moves.

A row is a bad tick (reason `bad_tick`) when

- its close jumps from the previous close by more than the threshold and the next close
  jumps back by more than the threshold, giving back at least three quarters of the jump
  (a spike that reverts the next day). This verdict needs the next row, so it is *known on*
  the next row's date: a state as of the spike's own day still sees the spike, as a user
  after that close would (see stabfrag.build.requests);
- or its high and low are both present and consistent and the close lies outside them by
  more than the threshold (known on its own date);
- or its close is above MAX_CLOSE, beyond any traded price (known on its own date).

The threshold of a row is `multiple` times the entity's robust daily move (1.4826 times the
median absolute log return of its previous SCALE_ROWS returns), and never below MIN_JUMP.
Rows with fewer previous returns use EARLY_JUMP. A close slightly outside its range is not a
bad tick: the row keeps its close and loses its range (SPEC §2).
"""

from __future__ import annotations

import math

import polars as pl

from stabfrag.config import BAD_TICK_MULTIPLE
from stabfrag.schema import DATE, ENTITY

DEFAULT_MULTIPLE = BAD_TICK_MULTIPLE
SCALE_ROWS = 63  # previous returns the robust scale reads
MIN_JUMP = math.log(1.15)  # quiet series: a 15 % move is never a tick by scale alone
EARLY_JUMP = math.log(2.0)  # too little history for a scale: only a doubling or halving
REVERT_SHARE = 0.25  # the next close ends within a quarter of the jump of the previous one
MAX_CLOSE = 1e12
MAD_TO_SIGMA = 1.4826


def _same_entity(offset: int) -> pl.Expr:
    return pl.col(ENTITY) == pl.col(ENTITY).shift(offset)


def _percent(log_move: pl.Expr) -> pl.Expr:
    """A log move as a simple percentage, one decimal."""
    return ((log_move.exp() - 1) * 100).round(1)


def flag_ticks(rows: pl.DataFrame, multiple: float) -> pl.DataFrame:
    """`rows` (sorted by entity, date; one row per pair) with `_tick` (the bad-tick detail,
    null for a good row) and `_known_on` (the date the verdict is known).

    `multiple` 0 turns the rule off.
    """
    if multiple <= 0 or rows.height == 0:
        return rows.with_columns(
            pl.lit(None, pl.String).alias("_tick"), pl.col(DATE).alias("_known_on")
        )
    c = pl.col("close")
    r = pl.when(_same_entity(1)).then((c / c.shift(1)).log())
    # 0-based row number within the entity, without regrouping the column (see features.plan)
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    obs = row - pl.when(~_same_entity(1).fill_null(False)).then(row).forward_fill()
    # Median over the previous SCALE_ROWS returns, all of the row's own entity.
    scale = (
        pl.when(obs > SCALE_ROWS)
        .then(pl.col("_r").abs().shift(1).rolling_median(SCALE_ROWS) * MAD_TO_SIGMA)
        .alias("_scale")
    )
    flagged = rows.with_columns(r.alias("_r")).with_columns(
        scale,
        pl.when(_same_entity(-1)).then(pl.col("_r").shift(-1)).alias("_r_next"),
        pl.when(_same_entity(-1)).then(pl.col(DATE).shift(-1)).alias("_next_date"),
    )
    h = (
        pl.when(pl.col("_scale").is_null())
        .then(pl.lit(EARLY_JUMP))
        .otherwise(pl.max_horizontal(pl.col("_scale") * multiple, pl.lit(MIN_JUMP)))
    )
    jump, back = pl.col("_r"), pl.col("_r_next")
    spike = (
        (jump.abs() > h)
        & (back.abs() > h)
        & (jump.sign() != back.sign())
        & ((jump + back).abs() <= REVERT_SHARE * jump.abs())
    ).fill_null(False)
    lo, hi = pl.col("low"), pl.col("high")
    range_ok = lo.is_finite() & hi.is_finite() & (lo > 0) & (lo <= hi)
    outside = pl.max_horizontal((lo / c).log(), (c / hi).log(), pl.lit(0.0))
    off_range = (range_ok & (outside > h)).fill_null(False)
    huge = c > MAX_CLOSE
    detail = (
        pl.when(huge)
        .then(pl.format("close {} above {}", c, pl.lit(f"{MAX_CLOSE:.0e}")))
        .when(off_range)
        .then(
            pl.format(
                "close {} lies outside the day's range [{}, {}] by more than {}%",
                c,
                lo,
                hi,
                _percent(h),
            )
        )
        .when(spike)
        .then(
            pl.format(
                "close {} jumps {}% and reverts {}% on {} (threshold {}%)",
                c,
                _percent(jump),
                _percent(back),
                pl.col("_next_date"),
                _percent(h),
            )
        )
    )
    known_on = pl.when(~huge & ~off_range & spike).then(pl.col("_next_date")).otherwise(DATE)
    return flagged.with_columns(detail.alias("_tick"), known_on.alias("_known_on")).drop(
        "_r", "_scale", "_r_next", "_next_date"
    )
