"""Rejects of a chunk, dated: which as-of partition reports each row reject, and counts."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stabfrag.ingest.reasons import ROW_REASONS
from stabfrag.schema import DATE, ENTITY

COLUMNS = ("as_of_date", ENTITY, DATE, "reason", "detail")


def own_rows(previous: dt.date | None, *, first_of_run: bool) -> pl.Expr:
    """Rows dated after the run's previous as-of date are this chunk's own; the earlier ones
    are look-back, read (and counted) by the chunk before."""
    return pl.col(DATE) > previous if previous is not None and not first_of_run else pl.lit(True)


def dated_row_rejects(rejects: pl.DataFrame, chunk: list[dt.date], own: pl.Expr) -> pl.DataFrame:
    """The chunk's own row rejects, each under the first as-of date on or after its date
    (an undated row under the chunk's first date)."""
    rows = rejects.filter(pl.col("reason").is_in(ROW_REASONS)).filter(own)
    bounds = pl.DataFrame({"_b": chunk}, schema={"_b": pl.Date})
    dated = (
        rows.filter(pl.col(DATE).is_not_null())
        .sort(DATE)
        .join_asof(bounds, left_on=DATE, right_on="_b", strategy="forward")
        .rename({"_b": "as_of_date"})
    )
    undated = rows.filter(pl.col(DATE).is_null()).with_columns(pl.lit(chunk[0]).alias("as_of_date"))
    return pl.concat([dated.select(COLUMNS), undated.select(COLUMNS)])
