"""validate's order check and per-entity counts against their plain definitions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from stabfrag.ingest.prices import ROW, _in_order, _per_entity, _sorted
from stabfrag.ingest.runs import entity_starts


def _frame(seed: int) -> pl.DataFrame:
    """Rows of a few entities, sorted or disturbed in one of several ways."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    ids = np.sort(rng.choice(["A", "AB", "B", "b", "C.US"], n))
    days = np.sort(rng.integers(0, 30, n))
    frame = pl.DataFrame(
        {
            "entity_id": ids,
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in days],
            ROW: np.arange(n, dtype=np.int64),
        }
    ).sort("entity_id", "date", ROW)
    kind = seed % 4
    if kind == 1 and n > 1:  # two rows swapped
        i, j = rng.choice(n, 2, replace=False)
        order = np.arange(n)
        order[[i, j]] = order[[j, i]]
        frame = frame[order]
    elif kind == 2:  # same entity and date: file rows out of order
        frame = frame.with_columns(pl.lit(dt.date(2024, 1, 1)).alias("date"))
        frame = frame.with_columns(pl.Series(ROW, rng.permutation(n), dtype=pl.Int64))
    elif kind == 3:  # shuffled
        frame = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    return frame


def _plain_in_order(frame: pl.DataFrame) -> bool:
    keys = list(zip(frame["entity_id"], frame["date"], frame[ROW], strict=True))
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


@pytest.mark.parametrize("seed", range(40))
def test_the_order_check_is_the_plain_comparison(seed: int) -> None:
    frame = _frame(seed)
    assert _in_order(frame) == _plain_in_order(frame)
    assert _plain_in_order(_sorted(frame))  # file rows are distinct: a strict order exists


@pytest.mark.parametrize("seed", range(20))
def test_per_entity_counts_are_the_group_by(seed: int) -> None:
    frame = _frame(seed * 4)  # sorted frames, as validate hands over
    got = _per_entity(frame, entity_starts(frame["entity_id"])).sort("entity_id")
    want = (
        frame.group_by("entity_id")
        .agg(pl.len().alias("n"), pl.col("date").max().alias("last_date"))
        .sort("entity_id")
    )
    assert got.equals(want)
    assert _per_entity(frame.head(0), entity_starts(frame.head(0)["entity_id"])).height == 0
