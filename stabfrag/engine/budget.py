"""Chunk size from a memory budget: how many calendar days of as-of dates a chunk may
span so that its look-back read, features and vectors fit in the budget.

A chunk holds its window's price rows (the chunk's days plus the look-back) through
validation and features, and its states' vectors through the joint step and the writes.
Both costs were measured on this code (bench/README.md, "Memory budget"); the model is
deliberately on the safe side of those figures.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

from stabfrag.errors import ConfigError
from stabfrag.ingest.window import LOOKBACK_DAYS

BASE_BYTES = 400 << 20  # the interpreter, libraries, models and scenario library
BYTES_PER_ROW = 200  # a price row of the window, from the read to the features
BYTES_PER_STATE = 4_000  # a state: its features, z-scores, joint vector and output rows
MAX_MEMORY = 1 << 50  # 1PB: a budget above it is a typo

# Binary units, as a memory budget is: 4GB and 4GiB are both 4 * 2**30 bytes.
_UNITS = {
    "": 1,
    "B": 1,
    **{f"{p}{i}B": 1 << (10 * (n + 1)) for n, p in enumerate("KMGT") for i in ("", "I")},
}


def parse_size(text: str) -> int:
    """'4GB', '4GiB', '512 MB', '1.5gb' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", text.upper())
    if not match or match.group(2) not in _UNITS:
        raise ConfigError(f"--memory '{text}' is not a size such as 4GB or 512MB")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ConfigError(f"--memory '{text}' must be above 0")
    if size > MAX_MEMORY:
        raise ConfigError(f"--memory '{text}' is more than any machine holds (at most 1PB)")
    return size


def format_size(size: float) -> str:
    """Bytes as the largest binary unit that keeps a number of at least 1: '1.3GB'."""
    unit = max(u for u in ("B", "KB", "MB", "GB", "TB") if _UNITS[u] <= max(size, 1))
    return f"{size / _UNITS[unit]:.1f}{unit}"


def chunk_days_for(days: pl.DataFrame, dates: list[dt.date], memory: int) -> int:
    """The calendar span of a chunk that fits `memory` bytes (at least 1 day); `days` is the
    prices file's trading_days."""
    rows = int(days["rows"].sum())
    if not rows or not dates:
        return 1
    first, last = days.row(0)[0], days.row(-1)[0]  # (ascending)
    calendar = max((last - first).days + 1, 1)
    rows_per_day = rows / calendar  # price rows per calendar day
    entities = rows / days.height  # rows per trading date: entities priced
    date_span = max((max(dates) - min(dates)).days + 1, 1)
    states_per_day = len(dates) / date_span * entities
    free = memory - BASE_BYTES - LOOKBACK_DAYS * rows_per_day * BYTES_PER_ROW
    per_day = rows_per_day * BYTES_PER_ROW + states_per_day * BYTES_PER_STATE
    if free < per_day:
        need = memory - free + per_day
        raise ConfigError(
            f"--memory {format_size(memory)} is less than one date of this input needs "
            f"(about {format_size(need)}); give at least that"
        )
    return int(free // per_day)
