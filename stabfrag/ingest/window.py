"""The look-back read: the rows a chunk of as-of dates needs, and no more."""

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
