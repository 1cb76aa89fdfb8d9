"""Entity runs: in a frame sorted by entity, each entity's rows are one run of positions.

Entity ids are text, the dearest column to compare (a pass over 5 M rows costs about 25
times one over integers). The runs' starts are found once, where the frame is sorted, and
passed on: every later stage reads positions, and a filter of rows maps the starts too.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def entity_starts(ids: pl.Series) -> np.ndarray:
    """The position of each entity's first row, of `ids` sorted (or grouped) by entity."""
    if ids.len() == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((ids != ids.shift(1)).fill_null(True).to_numpy())


def run_lengths(starts: np.ndarray, height: int) -> np.ndarray:
    """Rows of each run."""
    return np.diff(np.r_[starts, height]).astype(np.int64)


def continues(starts: np.ndarray, height: int) -> np.ndarray:
    """Per row: whether the row above it is of the same entity."""
    same = np.ones(height, dtype=bool)
    same[starts] = False
    return same


def observation_numbers(starts: np.ndarray, height: int) -> np.ndarray:
    """Per row: its 1-based observation number within its entity."""
    return np.arange(1, height + 1, dtype=np.int64) - np.repeat(
        starts.astype(np.int64), run_lengths(starts, height)
    )


def kept_starts(starts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The starts of the rows `keep` (a mask) leaves: a run left empty is gone. Read from
    the rows that go (a filter drops a few): a run moves up by those before it."""
    gone = np.flatnonzero(~keep)
    if len(gone) == 0:
        return starts
    ends = np.r_[starts[1:], len(keep)]
    before = np.searchsorted(gone, starts)
    alive = np.searchsorted(gone, ends) - before < ends - starts
    return (starts - before)[alive]


def history_starts(starts: np.ndarray, days: np.ndarray, max_gap_days: int) -> np.ndarray:
    """The runs of a history: each entity's first row, and each row that follows a gap of
    more than `max_gap_days` calendar days in its entity (`days`: the rows' dates as day
    numbers). A gap ends a history: windows, and the count of prices, restart after it."""
    gap = np.zeros(len(days), dtype=bool)
    gap[1:] = (days[1:] - days[:-1]) > max_gap_days
    gap &= continues(starts, len(days))
    if not gap.any():
        return starts
    return np.union1d(starts, np.flatnonzero(gap)).astype(np.int64)
