"""Rejects of a chunk, dated: which as-of partition reports each row reject, and counts."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stabfrag.ingest.reasons import ROW_REASONS
from stabfrag.schema import DATE, ENTITY

COLUMNS = ("as_of_date", ENTITY, DATE, "reason", "detail")


def own_rows(after: dt.date | None, column: str = DATE) -> pl.Expr:
    """Rows dated after `after` (the run's previous as-of date; None for a run's first
    chunk) are this chunk's own; the earlier ones are look-back, read (and counted) by the
    chunk before."""
    return pl.col(column) > after if after is not None else pl.lit(True)


def dated_row_rejects(
    rejects: pl.DataFrame, ticks: pl.DataFrame, chunk: list[dt.date], after: dt.date | None
) -> pl.DataFrame:
    """The chunk's own row rejects, each under the first as-of date on or after the day it
    became known: its own date, or for a bad tick judged by the next close (`ticks`) that
    close's date. An undated row goes under the chunk's first date; a tick known after the
    chunk's last date is left to the chunk that reaches it."""
    rows = rejects.filter(pl.col("reason").is_in(ROW_REASONS))
    if ticks.height:
        known = ticks.select(ENTITY, DATE, "known_on", pl.lit("bad_tick").alias("reason"))
        rows = rows.join(known, on=[ENTITY, DATE, "reason"], how="left", maintain_order="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.Date).alias("known_on"))
    rows = rows.with_columns(pl.coalesce("known_on", DATE).alias("_known"))
    rows = rows.filter(own_rows(after, "_known"))
    bounds = pl.DataFrame({"_b": chunk}, schema={"_b": pl.Date})
    dated = (
        rows.filter(pl.col("_known").is_not_null())
        .sort("_known")
        .join_asof(bounds, left_on="_known", right_on="_b", strategy="forward")
        .rename({"_b": "as_of_date"})
        .filter(pl.col("as_of_date").is_not_null())
    )
    undated = rows.filter(pl.col(DATE).is_null()).with_columns(pl.lit(chunk[0]).alias("as_of_date"))
    return pl.concat([dated.select(COLUMNS), undated.select(COLUMNS)])
