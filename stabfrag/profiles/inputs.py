"""The inputs of each profile: per (entity, as-of date), the behaviour traits and its
fundamentals point in time.

The traits are those of the entity's last valid price dated before its newest price on
or before the date: one row behind the newest. A spike on the newest row is judged a bad
tick only by the next close, after the date; every row the profile reads has its next row
on or before the date, so its verdict is known then, and the profile is the same whether
the input ends on the date or goes on for years. A long-horizon trait loses nothing by
the day.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from stabfrag.asof.join import as_of_join
from stabfrag.config import FUNDAMENTALS_STALENESS_DAYS, MAX_STALENESS_DAYS
from stabfrag.ingest.reasons import entity_rule
from stabfrag.profiles.behaviour import TRAIT_NAMES, TRAIT_ROWS, behaviour
from stabfrag.profiles.fundamentals import FIELD_NAMES, fundamentals_at
from stabfrag.schema import DATE, ENTITY

MIN_PRICES = TRAIT_ROWS + 1  # the two-year return window of beta, vol and skew


def profile_inputs(
    prices: pl.DataFrame,
    dates: list[dt.date],
    *,
    market: str | None,
    fundamentals: pl.DataFrame | None = None,
    ticks: pl.DataFrame | None = None,
    max_staleness_days: int = MAX_STALENESS_DAYS,
    fundamentals_staleness_days: int = FUNDAMENTALS_STALENESS_DAYS,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(inputs, skipped) for every entity with a valid price on or before each date.

    `prices` are valid rows sorted by (entity_id, date); `ticks` the bad ticks taken out of
    them (entity_id, date), which still count as the newest row. inputs: entity_id, as_of_date,
    the traits (TRAIT_NAMES) and fields (FIELD_NAMES). skipped: the (entity, date) pairs
    that get no profile, with the reason (`insufficient_history`: fewer than 505 prices;
    `stale`: no price within `max_staleness_days` of the date).
    """
    traits = behaviour(prices, market=market).with_columns(
        (pl.int_range(pl.len()).over(ENTITY) + 1).alias("_n")
    )
    grid = (
        prices.select(pl.col(ENTITY).unique())
        .join(pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}), how="cross")
        .sort("as_of_date", ENTITY)
    )
    rows = prices.select(ENTITY, DATE)
    if ticks is not None and ticks.height:
        rows = pl.concat([rows, ticks.select(ENTITY, DATE)]).unique()
    newest = as_of_join(grid, rows.rename({DATE: "last_date"}), right_on="last_date").filter(
        pl.col("last_date").is_not_null()  # not listed yet on that date: no state at all
    )
    behind = newest.with_columns((pl.col("last_date") - pl.duration(days=1)).alias("_behind"))
    matched = as_of_join(
        behind, traits.rename({DATE: "_row_date"}), left_on="_behind", right_on="_row_date"
    ).with_columns(pl.col("_n").fill_null(0))
    reason, detail = entity_rule(
        pl.col("_n"),
        pl.col("last_date"),
        as_of=pl.col("as_of_date"),
        min_prices=MIN_PRICES,
        max_staleness_days=max_staleness_days,
    )
    judged = matched.with_columns(reason.alias("reason"), detail.alias("detail"))
    skipped = judged.filter(pl.col("reason").is_not_null()).select(
        ENTITY, "as_of_date", "reason", "detail"
    )
    kept = judged.filter(pl.col("reason").is_null())
    if fundamentals is None:
        fields = pl.DataFrame(
            {f: pl.Series([None] * kept.height, dtype=pl.Float64) for f in FIELD_NAMES}
        )
    else:
        fields = fundamentals_at(kept, fundamentals, max_staleness_days=fundamentals_staleness_days)
    inputs = pl.concat([kept.select(ENTITY, "as_of_date", *TRAIT_NAMES), fields], how="horizontal")
    return inputs, skipped
