"""The bad-tick rule: a close no market traded at, judged against the entity's own moves.

A row is a bad tick (reason `bad_tick`) when

- its close jumps from the previous close by more than the threshold and the next close
  jumps back by more than the threshold, giving back at least three quarters of the jump
  (a spike that reverts the next day). This verdict needs the next row, so it is *known on*
  the next row's date: a state as of the spike's own day still sees the spike, as a user
  after that close would (see stabfrag.engine.requests);
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

import numpy as np
import polars as pl

from stabfrag.config import BAD_TICK_MULTIPLE
from stabfrag.ingest.runs import continues, entity_starts
from stabfrag.schema import DATE, ENTITY

DEFAULT_MULTIPLE = BAD_TICK_MULTIPLE
SCALE_ROWS = 63  # previous returns the robust scale reads
MIN_JUMP = math.log(1.15)  # quiet series: a 15 % move is never a tick by scale alone
EARLY_JUMP = math.log(2.0)  # too little history for a scale: only a doubling or halving
REVERT_SHARE = 0.25  # the next close ends within a quarter of the jump of the previous one
MAX_CLOSE = 1e12
MAD_TO_SIGMA = 1.4826


def _percent(log_move: pl.Expr) -> pl.Expr:
    """A log move as a simple percentage, one decimal."""
    return ((log_move.exp() - 1) * 100).round(1)


TICKS_SCHEMA = {"_i": pl.UInt32, "_tick": pl.String, "_known_on": pl.Date}


def find_ticks(
    rows: pl.DataFrame, multiple: float, *, starts: np.ndarray | None = None
) -> pl.DataFrame:
    """The bad ticks of `rows` (sorted by entity, date; one row per pair; `starts`, each
    entity's first row, when known): `_i` (the row's position), `_tick` (the detail) and
    `_known_on` (the date the verdict is known; null for a verdict known on the row's own
    date), in row order.

    `multiple` 0 turns the rule off. Every threshold is at least MIN_JUMP, so the robust
    scale is computed only at the few rows that move that much: the rule costs a few
    vector passes over four columns, not a rolling median of every row, and its answer is
    as small as the ticks it finds (no column as long as the rows).
    """
    if multiple <= 0 or rows.height == 0:
        return pl.DataFrame(schema=TICKS_SCHEMA)
    c, lo, hi = pl.col("close"), pl.col("low"), pl.col("high")
    if starts is None:
        starts = entity_starts(rows[ENTITY])
    same_row = continues(starts, rows.height)
    base = (
        rows.select(DATE, "close", "low", "high")
        .with_columns(pl.Series("_same", same_row))
        .with_columns(pl.when(pl.col("_same")).then((c / c.shift(1)).log()).alias("_r"))
    )
    # Every candidate moves by more than MIN_JUMP, lies outside its range or is huge: one
    # cheap pass finds the few rows that can be, and the rule runs on those alone.
    maybe = base.select(
        ((pl.col("_r").abs() > MIN_JUMP) | (c > hi) | (c < lo) | (c > MAX_CLOSE)).fill_null(False)
    ).to_series()
    at = maybe.arg_true().to_numpy().astype(np.int64)
    after = np.minimum(at + 1, base.height - 1)
    has_next = (at + 1 < base.height) & same_row[after]  # the next row is the same entity's
    returns = base["_r"].to_numpy()
    nothing = pl.lit(None)
    picked = base[at].with_columns(
        pl.Series("_i", at, dtype=pl.UInt32),
        pl.when(pl.Series(has_next))
        .then(pl.Series(returns[after]))
        .otherwise(nothing)
        .alias("_r_next"),
        pl.when(pl.Series(has_next))
        .then(base[DATE].gather(after))
        .otherwise(nothing)
        .alias("_next_date"),
        # 0-based row number within the entity
        pl.Series("_obs", at - starts[np.searchsorted(starts, at, side="right") - 1]),
    )
    candidate = (
        _spike(pl.lit(MIN_JUMP)) | _off_range(pl.lit(MIN_JUMP)) | (c > MAX_CLOSE)
    ).fill_null(False)
    needed = ["_i", "close", "low", "high", "_r", "_r_next", "_next_date", "_obs"]
    found = picked.filter(candidate).select(needed).rechunk()
    return _judge(found, returns, multiple)


def _spike(h: pl.Expr) -> pl.Expr:
    """A jump beyond h that the next close takes back (to within REVERT_SHARE of it)."""
    jump, back = pl.col("_r"), pl.col("_r_next")
    return (
        (jump.abs() > h)
        & (back.abs() > h)
        & (jump.sign() != back.sign())
        & ((jump + back).abs() <= REVERT_SHARE * jump.abs())
    )


def _off_range(h: pl.Expr) -> pl.Expr:
    """A close outside a consistent high/low by more than h (in log terms)."""
    lo, hi, c = pl.col("low"), pl.col("high"), pl.col("close")
    range_ok = lo.is_finite() & hi.is_finite() & (lo > 0) & (lo <= hi)
    outside = pl.max_horizontal((lo / c).log(), (c / hi).log(), pl.lit(0.0))
    return range_ok & (outside > h)


def _judge(candidates: pl.DataFrame, returns: np.ndarray, multiple: float) -> pl.DataFrame:
    """(_i, _tick, _known_on) of the candidate rows that are bad ticks, with the threshold
    from each row's own robust scale (its previous SCALE_ROWS returns, read by index)."""
    at = candidates["_i"].to_numpy().astype(np.int64)
    full = candidates["_obs"].to_numpy() > SCALE_ROWS
    window = at[full, None] + np.arange(-SCALE_ROWS, 0)[None, :]
    scale = np.full(len(at), np.nan)
    scale[full] = np.median(np.abs(returns[window]), axis=1) * MAD_TO_SIGMA
    c, h = pl.col("close"), pl.col("_h")
    threshold = (
        pl.when(pl.col("_scale").is_nan())
        .then(pl.lit(EARLY_JUMP))
        .otherwise(pl.max_horizontal(pl.col("_scale") * multiple, pl.lit(MIN_JUMP)))
    )
    # Plain columns first, then text from them: the verdicts, then the details.
    judged = (
        candidates.with_columns(pl.Series("_scale", scale))
        .with_columns(threshold.alias("_h"))
        .with_columns(
            _spike(h).fill_null(False).alias("_spike"),
            _off_range(h).fill_null(False).alias("_off"),
            (c > MAX_CLOSE).alias("_huge"),
            _percent(h).alias("_h_pct"),
            _percent(pl.col("_r")).alias("_jump_pct"),
            _percent(pl.col("_r_next")).alias("_back_pct"),
        )
        .filter(pl.col("_spike") | pl.col("_off") | pl.col("_huge"))
    )
    detail = (
        pl.when(pl.col("_huge"))
        .then(pl.format(f"close {{}} above {MAX_CLOSE:.0e}", c))
        .when(pl.col("_off"))
        .then(
            pl.format(
                "close {} lies outside the day's range [{}, {}] by more than {}%",
                c,
                pl.col("low"),
                pl.col("high"),
                pl.col("_h_pct"),
            )
        )
        .otherwise(
            pl.format(
                "close {} jumps {}% and reverts {}% on {} (threshold {}%)",
                c,
                pl.col("_jump_pct"),
                pl.col("_back_pct"),
                pl.col("_next_date"),
                pl.col("_h_pct"),
            )
        )
    )
    spike_only = ~pl.col("_huge") & ~pl.col("_off")
    return judged.select(
        "_i",
        detail.alias("_tick"),
        pl.when(spike_only).then(pl.col("_next_date")).alias("_known_on"),
    )
