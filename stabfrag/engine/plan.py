"""Which as-of dates a build or a backfill makes, and how many calendar days a chunk spans:
what a script, a benchmark and the command line all ask before a run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from stabfrag.asof.calendar import check_as_of, range_dates, trading_days
from stabfrag.config import DEFAULT_MEMORY, MAX_STALENESS_DAYS
from stabfrag.engine.budget import chunk_days_for, parse_size


@dataclass(frozen=True)
class Plan:
    """The as-of dates of a run, ascending, and its chunk span (None: the config's)."""

    dates: list[dt.date]
    chunk_days: int | None = None


def build_plan(
    prices: Path, as_of: dt.date, *, max_staleness_days: int = MAX_STALENESS_DAYS
) -> Plan:
    """One as-of date, refused when no entity of the file can have a state on it."""
    check_as_of(prices, as_of, max_staleness_days=max_staleness_days)
    return Plan([as_of])


def backfill_plan(
    prices: Path,
    start: dt.date,
    end: dt.date,
    *,
    freq: str = "month",
    memory: str = DEFAULT_MEMORY,
    chunk_days: int | None = None,
) -> Plan:
    """Every trading date of [start, end] (or the last of each week or month the data has),
    and the chunk span that fits `memory` unless `chunk_days` is given."""
    days = trading_days(prices)  # one scan serves the calendar and the budget
    dates = range_dates(prices, start, end, freq, days=days)
    if chunk_days is None:
        chunk_days = chunk_days_for(days, dates, parse_size(memory))
    return Plan(dates, chunk_days)
