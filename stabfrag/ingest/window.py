"""Point in time: the look-back read, the as-of calendar, and the one as-of join.

"The last row on or before the as-of date, within a limit" is written here once and used
by state requests, profiles, scenario reference paths and evaluation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from stabfrag.errors import InputError
from stabfrag.ingest.prices import (
    ROW,
    collect,
    judge_ids,
    row_bad,
    scan_prices,
    window_filter,
)
from stabfrag.schema import DATE, ENTITY

# Calendar days read before an as-of date: 295 observations of a daily series with room
# for holidays. Entities that trade less often get their whole history (see read_window).
LOOKBACK_DAYS = 730


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


def read_window(
    path: Path,
    *,
    first: dt.date,
    last: dt.date,
    include_undated: bool,
    min_rows: int,
    where: pl.Expr | None = None,
) -> pl.DataFrame:
    """Rows dated in [first - LOOKBACK_DAYS, last] (and satisfying `where`, an entity block);
    whole history for entities that need it.

    An entity with no more than `min_rows` valid prices in the window before `first` but
    older rows outside it would get truncated windows: its full history up to `last` is
    read instead (`min_rows` is the feature set's look-back).
    """
    start = first - dt.timedelta(days=LOOKBACK_DAYS)
    dated = window_filter(start, last, include_undated=include_undated)
    if where is not None:
        dated = dated & where
    scan = scan_prices(path)
    rows, oldest = collect(scan.select(pl.len(), pl.col(DATE).min()), path).row(0)
    if rows == 0:
        raise InputError(path, "no rows")
    if oldest is None or oldest >= start:
        # Nothing is older than the window (a backfill's first chunk, mostly): a short
        # history has no older rows to add, so no entity needs counting.
        return collect(scan.filter(dated), path)
    # An entity with at most min_rows rows of any kind in the look-back is short however
    # many are valid: counted from the ids and dates alone, its older rows are read with
    # the window, in one scan, in file order.
    seen = collect(
        scan.filter(dated).group_by(ENTITY).agg((pl.col(DATE) <= first).sum().alias("n")), path
    )
    surely = seen.filter(pl.col("n") <= min_rows)[ENTITY].drop_nulls()
    read = dated | _older(start, surely) if surely.len() else dated
    window = collect(scan.filter(read), path)
    # The rest is decided by the rules on the look-back's rows, counted in memory: an
    # entity short only once its invalid rows and duplicates are left out is rare.
    ids = seen.select(ENTITY)
    counts = (
        window.lazy()
        .filter(pl.col(DATE).is_between(start, first))
        .filter(~row_bad(check_ids=judge_ids(ids)[1], volume_text="_volume_raw" in window.columns))
        .group_by(ENTITY)
        .agg(pl.col(DATE).n_unique().alias("n"))
        .collect()
    )
    short = ids.drop_nulls().join(counts.filter(pl.col("n") > min_rows), on=ENTITY, how="anti")
    more = short.filter(~pl.col(ENTITY).is_in(surely.implode()))[ENTITY]
    older = collect(scan.filter(_older(start, more)), path) if more.len() else None
    if older is None or older.height == 0:
        return window
    # In file order, as one scan of both would give them (ROW is the file row).
    return pl.concat([older, window]).sort(ROW)


def _older(start: dt.date, entities: pl.Series) -> pl.Expr:
    """The rows of `entities` dated before `start`."""
    return (pl.col(DATE) < start) & pl.col(ENTITY).is_in(entities.implode())


def data_span(path: Path) -> tuple[dt.date, dt.date]:
    """The first and last date of a prices file (InputError when it holds none)."""
    span = collect(
        scan_prices(path).select(
            pl.col(DATE).min().alias("first"), pl.col(DATE).max().alias("last")
        ),
        path,
    )
    first, last = span.row(0)
    if not isinstance(first, dt.date) or not isinstance(last, dt.date):
        raise InputError(path, "no dated rows")
    return first, last


def check_as_of(path: Path, as_of: dt.date, *, max_staleness_days: int) -> None:
    """Refuse an as-of date at which no entity of the file can have a state: before its
    first date, or later than its last date plus the staleness limit."""
    first, last = data_span(path)
    if not first <= as_of <= last + dt.timedelta(days=max_staleness_days):
        raise InputError(
            path,
            f"holds dates from {first} to {last}; as of {as_of} no entity can have a state "
            f"(the staleness limit is {max_staleness_days} days)",
        )


def trading_days(path: Path) -> pl.DataFrame:
    """Each date of a prices file with its rows (`date`, `rows`), ascending: one scan that
    serves both the as-of calendar and the memory budget."""
    return collect(
        scan_prices(path)
        .filter(pl.col(DATE).is_not_null())
        .group_by(DATE)
        .agg(pl.len().alias("rows")),
        path,
    ).sort(DATE)


def as_of_dates(
    path: Path, start: dt.date, end: dt.date, freq: str, *, days: pl.DataFrame | None = None
) -> list[dt.date]:
    """Trading dates in the data between start and end: every one, or the last of each week
    or month that the data has (`days`: the file's trading_days, when already read)."""
    days = trading_days(path) if days is None else days
    dates = days.filter(pl.col(DATE).is_between(start, end)).select(DATE)
    if freq == "day":
        picked = dates
    else:
        key = pl.col(DATE).dt.truncate("1w" if freq == "week" else "1mo").alias("period")
        picked = dates.group_by(key).agg(pl.col(DATE).max()).sort(DATE)
    return picked[DATE].to_list()
