"""The as-of calendar: which dates a prices file can be built as of."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from stabfrag.errors import ConfigError, InputError
from stabfrag.ingest.prices import collect, scan_prices
from stabfrag.schema import DATE


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


FREQUENCIES = ("day", "week", "month")


def range_dates(
    path: Path, start: dt.date, end: dt.date, freq: str, *, days: pl.DataFrame | None = None
) -> list[dt.date]:
    """as_of_dates of [start, end], refusing a reversed range, an unknown frequency and a
    range with no trading date (one line each); `days`: the file's trading_days, when
    already read."""
    if end < start:
        raise ConfigError("--end is before --start")
    if freq not in FREQUENCIES:
        raise ConfigError(f"--freq '{freq}' is not one of {', '.join(FREQUENCIES)}")
    dates = as_of_dates(path, start, end, freq, days=days)
    if not dates:
        raise InputError(path, f"no trading dates between {start} and {end}")
    return dates


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
