"""State requests: each (entity, as-of date)'s last row, found by binary search on the
sorted panel, equals the point-in-time join it replaced."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stabfrag.asof.join import as_of_join
from stabfrag.asof.requests import LOOKBACK_DAYS, last_rows
from tests.conftest import random_panel


def _joined(prices: pl.DataFrame, dates: list[dt.date]) -> pl.DataFrame:
    """The as-of join state requests used before: an independent answer."""
    indexed = prices.with_row_index("_pos").select(
        pl.col("_pos").cast(pl.Int64),
        "entity_id",
        pl.col("date").alias("last_date"),
        (pl.int_range(pl.len()).over("entity_id") + 1).alias("n_obs"),
    )
    grid = prices.select(pl.col("entity_id").unique()).join(
        pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}), how="cross"
    )
    return as_of_join(grid, indexed, right_on="last_date", max_days=LOOKBACK_DAYS)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    offsets=st.lists(st.integers(-200, 4_000), min_size=1, max_size=6, unique=True),
)
def test_last_rows_equal_the_as_of_join(seed: int, offsets: list[int]) -> None:
    # Long gaps (staleness past the look-back), dates before any price and after the last.
    prices = random_panel(seed, 6, 400, min_len=1)
    dates = sorted(dt.date(2000, 1, 3) + dt.timedelta(days=o) for o in offsets)
    got = last_rows(prices, dates)
    assert not got["_after_gap"].any()  # (these prices have no gap of MAX_GAP_DAYS)
    got = got.drop("_after_gap")
    want = _joined(prices, dates).select(got.columns)
    keys = ["as_of_date", "entity_id"]
    assert got.select(keys).equals(got.sort(keys).select(keys))  # dates, then entities
    assert got.sort(keys).equals(want.sort(keys))
