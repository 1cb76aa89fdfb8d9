"""Fundamentals: reported company figures, checked row by row and taken point in time.

The file is long (entity_id, date, field, value) or wide (entity_id, date and one column
per field). `date` is when a figure became known (its publication), not the period it
describes: a state as of D uses the newest value of each field dated on or before D and
no older than the staleness limit. A row that breaks a rule is a reject with its reason;
rows in = rows used + rows rejected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stabfrag.asof.join import as_of_join
from stabfrag.config import FUNDAMENTALS_STALENESS_DAYS
from stabfrag.errors import InputError, first_line
from stabfrag.schema import DATE, ENTITY

# field -> transform before robust scaling (as the core features' transforms)
FIELDS: dict[str, str] = {
    "leverage": "log",  # debt / equity
    "interest_cover": "slog1p",  # EBIT / interest expense
    "profitability": "identity",  # return on assets
    "size": "identity",  # ln(market capitalisation)
}
FIELD_NAMES = tuple(FIELDS)
LONG_COLUMNS = (ENTITY, DATE, "field", "value")
SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class Fundamentals:
    """The usable rows (entity_id, date, field, value), the rejects and the values read
    (a wide row holds one value per field column): rows_in = rows + rejects."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    rows_in: int


def _long(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The file as long rows with their 0-based row in the file (wide rows unpivoted)."""
    missing = [c for c in (ENTITY, DATE) if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing fundamentals column(s): {', '.join(missing)}")
    if ("field" in frame.columns) != ("value" in frame.columns):
        raise InputError(
            path, "a long fundamentals file has both a field and a value column (one is missing)"
        )
    numbered = frame.with_row_index(SOURCE_ROW)
    if {"field", "value"} <= set(frame.columns):
        return numbered.select(
            SOURCE_ROW,
            pl.col(ENTITY).cast(pl.String),
            DATE,
            pl.col("field").cast(pl.String),
            pl.col("value").cast(pl.String),
        )
    fields = [c for c in frame.columns if c not in (ENTITY, DATE)]
    if not fields:
        raise InputError(path, "no fundamentals field: expected field/value or field columns")
    return numbered.select(
        SOURCE_ROW,
        pl.col(ENTITY).cast(pl.String),
        DATE,
        *[pl.col(f).cast(pl.String) for f in fields],
    ).unpivot(index=[SOURCE_ROW, ENTITY, DATE], variable_name="field", value_name="value")


def _read(path: Path) -> pl.DataFrame:
    """The file as it is (CSV read as text): a one-line error when it cannot be read."""
    try:
        if path.suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(path, f"cannot read fundamentals: {first_line(exc)}") from None


def _reason(known_until: dt.date, entities: pl.Series | None) -> pl.Expr:
    """The first rule a row breaks (null: none)."""
    return (
        pl.when(pl.col(ENTITY).is_null() | (pl.col(ENTITY).str.strip_chars() == ""))
        .then(pl.lit("bad_entity_id"))
        .when(pl.lit(False) if entities is None else ~pl.col(ENTITY).is_in(entities.implode()))
        .then(pl.lit("unknown_entity"))
        .when(pl.col("_date").is_null())
        .then(pl.lit("bad_date"))
        .when(pl.col("_date") > known_until)
        .then(pl.lit("future_date"))
        .when(~pl.col("field").is_in(FIELD_NAMES))
        .then(pl.lit("unknown_field"))
        .when(pl.col("value").is_null())
        .then(pl.lit("missing_value"))
        .when(pl.col("_value").is_null())
        .then(pl.lit("non_numeric_value"))
        .when(~pl.col("_value").is_finite())
        .then(pl.lit("nonfinite_value"))
    )


def _detail(reason: pl.Expr, known_until: dt.date) -> pl.Expr:
    """What a reject's detail says."""
    return (
        pl.when(reason == "future_date")
        .then(pl.format("dated after the newest price ({})", pl.lit(known_until)))
        .when(reason == "unknown_entity")
        .then(pl.lit("no valid prices for this entity_id"))
        .when(reason == "unknown_field")
        .then(pl.format("field '{}' is not one of {}", "field", pl.lit(", ".join(FIELD_NAMES))))
        .when(reason.is_in(["non_numeric_value", "nonfinite_value"]))
        .then(pl.format("value '{}' is not a finite number", "value"))
        .otherwise(reason)
    )


def read_fundamentals(
    path: Path, *, known_until: dt.date, entities: pl.Series | None = None
) -> Fundamentals:
    """Read and check a fundamentals file (Parquet or CSV).

    Rejected, with a reason: no entity_id, a date that is not a date, a date after
    `known_until` (the newest price of the input: a figure cannot be published after the
    market data it is used with), an entity not among `entities` (those with valid
    prices, when given), an unknown field, a value that is not a number or not finite,
    and a second row for the same entity, date and field.
    """
    long = _long(_read(path), path)
    temporal = long.schema[DATE] in (pl.Date, pl.Datetime) or isinstance(
        long.schema[DATE], pl.Datetime
    )
    date = (
        pl.col(DATE).cast(pl.Date)
        if temporal
        else pl.col(DATE).cast(pl.String).str.to_date("%Y-%m-%d", strict=False)
    )
    value = pl.col("value").str.strip_chars().cast(pl.Float64, strict=False)
    checked = long.with_columns(date.alias("_date"), value.alias("_value"))
    reason = _reason(known_until, entities)
    detail = _detail(reason, known_until)
    judged = checked.with_columns(reason.alias("reason"), detail.alias("detail"))
    good = judged.filter(pl.col("reason").is_null())
    # The first row of an (entity, date, field) in file order wins, as for prices.
    duplicate = ~pl.struct(ENTITY, "_date", "field").is_first_distinct()
    rejects = pl.concat(
        [
            judged.filter(pl.col("reason").is_not_null()),
            good.filter(duplicate).with_columns(
                pl.lit("duplicate").alias("reason"),
                pl.lit("a second row for this entity, date and field").alias("detail"),
            ),
        ]
    )
    rows = good.filter(~duplicate).select(
        ENTITY, pl.col("_date").alias(DATE), "field", pl.col("_value").alias("value")
    )
    return Fundamentals(
        rows=rows.sort(ENTITY, DATE, "field"),
        rejects=rejects.select(
            SOURCE_ROW, ENTITY, pl.col(DATE).cast(pl.String), "field", "value", "reason", "detail"
        ).sort(SOURCE_ROW),
        rows_in=long.height,
    )


def fundamentals_at(
    states: pl.DataFrame,
    rows: pl.DataFrame,
    *,
    max_staleness_days: int = FUNDAMENTALS_STALENESS_DAYS,
) -> pl.DataFrame:
    """Each field's newest value on or before each state's as_of_date (null when none, or
    older than the limit), one column per field in FIELD_NAMES order, in `states`' order."""
    out = states.select(ENTITY, "as_of_date")
    for field in FIELD_NAMES:  # four fields, not rows
        right = rows.filter(pl.col("field") == field).select(ENTITY, DATE, pl.col("value"))
        joined = as_of_join(out.select(ENTITY, "as_of_date"), right, max_days=max_staleness_days)
        out = out.with_columns(joined["value"].alias(field))
    return out.select(FIELD_NAMES)
