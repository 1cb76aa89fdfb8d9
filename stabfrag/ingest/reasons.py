"""Reason codes: every code a reject can carry, whether it rejects a row or an entity, and
the one rule that says an entity can make no state (too short a history, or stale)."""

from __future__ import annotations

import polars as pl

from stabfrag.config import MAX_STALENESS_DAYS

MIN_PRICES = 64  # one full 63-return window
# A gap of more than this many calendar days between two valid prices of an entity ends
# its history: the window restarts after it (a 10-year hole is not one day's move).
MAX_GAP_DAYS = 90

ROW_SCOPE = "row"
ENTITY_SCOPE = "entity"

# code -> what it rejects. A row reject removes one input row; an entity reject removes an
# entity's state on a date (its rows stay valid for other dates).
REASONS: dict[str, str] = {
    "bad_entity_id": ROW_SCOPE,
    "bad_date": ROW_SCOPE,
    "bad_close": ROW_SCOPE,
    "nonfinite_close": ROW_SCOPE,
    "nonpositive_close": ROW_SCOPE,
    "bad_volume": ROW_SCOPE,
    "duplicate": ROW_SCOPE,
    "bad_tick": ROW_SCOPE,
    "no_valid_rows": ENTITY_SCOPE,
    "insufficient_history": ENTITY_SCOPE,
    "history_gap": ENTITY_SCOPE,
    "stale": ENTITY_SCOPE,
    "degenerate_state": ENTITY_SCOPE,
}
ROW_REASONS = tuple(code for code, scope in REASONS.items() if scope == ROW_SCOPE)
# Entity reasons of a state on an as-of date (no_valid_rows: every row of its window rejected).
STATE_REASONS = (
    "no_valid_rows",
    "insufficient_history",
    "history_gap",
    "stale",
    "degenerate_state",
)


def entity_rule(
    n_obs: pl.Expr,
    last_date: pl.Expr,
    *,
    as_of: pl.Expr | None = None,
    min_prices: int = MIN_PRICES,
    max_staleness_days: int = MAX_STALENESS_DAYS,
) -> tuple[pl.Expr, pl.Expr]:
    """(reason, detail) of an entity that can make no state, null where it can.

    Too few valid prices gives `insufficient_history`; with `as_of`, a last price more than
    `max_staleness_days` before it gives `stale` (a delisted name must not look calm forever).
    """
    # Without an as-of date nothing is stale: the staleness test is then always false.
    by = "" if as_of is None else " by the as-of date"
    stale_rule = (
        pl.lit(False) if as_of is None else last_date < as_of - pl.duration(days=max_staleness_days)
    )
    reason = (
        pl.when(n_obs < min_prices)
        .then(pl.lit("insufficient_history"))
        .when(stale_rule)
        .then(pl.lit("stale"))
        .otherwise(pl.lit(None, pl.String))
    )
    short = pl.format("{} valid prices" + by + ", at least {} needed", n_obs, pl.lit(min_prices))
    stale = pl.format(
        "last price on {}, more than {} days before the as-of date",
        last_date,
        pl.lit(max_staleness_days),
    )
    return reason, pl.when(reason == "stale").then(stale).otherwise(short)


def counts_by_reason(frame: pl.DataFrame) -> dict[str, int]:
    """Rows of a rejects frame per reason, by reason."""
    if frame.height == 0:
        return {}
    g = frame.group_by("reason").len().sort("reason")
    return dict(zip(g["reason"].to_list(), g["len"].to_list(), strict=True))
