"""The one as-of join: "the last row on or before the date, within a limit".

Written here once and used by state requests, profiles, fundamentals, behaviour traits,
scenario reference paths, labels and evaluation.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from stabfrag.schema import DATE, ENTITY


def as_of_join(
    left: pl.DataFrame,
    right: pl.DataFrame,
    *,
    left_on: str = "as_of_date",
    right_on: str = DATE,
    by: str = ENTITY,
    max_days: int | None = None,
) -> pl.DataFrame:
    """Each row of `left` with the row of `right` (same `by`) dated last on or before its
    `left_on` date, in `left`'s order; nulls where there is none, or where that row is more
    than `max_days` calendar days older. No row after the date is ever read."""
    index = "_as_of_join_i"
    matched = (
        left.with_row_index(index)
        .sort(left_on)
        .join_asof(
            right.sort(right_on),
            left_on=left_on,
            right_on=right_on,
            by=by,
            strategy="backward",
            check_sortedness=False,
            tolerance=None if max_days is None else dt.timedelta(days=max_days),
        )
        .sort(index)
        .drop(index)
    )
    return matched
