"""Entity runs against their plain definitions, and validate's runs against its prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stabfrag.ingest.prices import read_prices, validate
from stabfrag.ingest.runs import continues, entity_starts, kept_starts, observation_numbers
from tests.conftest import random_panel

ids_strategy = st.lists(st.sampled_from(["A", "B", "CC", "D.US"]), max_size=40).map(sorted)


@settings(max_examples=100, deadline=None)
@given(ids=ids_strategy, seed=st.integers(0, 2**31))
def test_runs_are_the_plain_reading(ids: list[str], seed: int) -> None:
    starts = entity_starts(pl.Series(ids, dtype=pl.String))
    assert starts.tolist() == [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    assert continues(starts, len(ids)).tolist() == [
        i > 0 and ids[i] == ids[i - 1] for i in range(len(ids))
    ]
    assert observation_numbers(starts, len(ids)).tolist() == [
        ids[: i + 1].count(ids[i]) for i in range(len(ids))
    ]
    keep = np.random.default_rng(seed).random(len(ids)) < 0.5
    left = [e for e, k in zip(ids, keep, strict=True) if k]
    assert kept_starts(starts, keep).tolist() == entity_starts(pl.Series(left)).tolist()


def test_validate_hands_over_the_runs_of_its_prices(tmp_path: Path) -> None:
    """Duplicates, bad ticks (one an entity's only row), bad rows and rejected entities
    all leave rows: the runs validate passes on are those of the rows it keeps."""
    panel = random_panel(4, 6, 300, min_len=40).select("entity_id", "date", "close", "volume")
    day = dt.date(2001, 6, 1)
    extra = pl.DataFrame(
        {
            "entity_id": ["E1.US", "SHORT", "HUGE", "E2.US"],
            "date": [panel["date"][5], day, day, day],
            "close": [1.0, 5.0, 1e13, -1.0],
            "volume": [1.0, 1.0, 1.0, 1.0],
        }
    )
    frame = pl.concat([panel, panel.slice(10, 5), extra])  # 5 duplicates, 4 odd rows
    spike = frame.with_row_index("_i").filter(pl.col("entity_id") == "E3.US")["_i"][20]
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == spike)
        .then(pl.col("close") * 5)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    path = tmp_path / "p.parquet"
    frame.write_parquet(path)
    checked = validate(read_prices(path), min_prices=30)
    reasons = set(checked.rejects["reason"].to_list())
    assert {"duplicate", "bad_tick", "nonpositive_close", "insufficient_history"} <= reasons
    assert "HUGE" not in checked.prices["entity_id"].to_list()
    assert checked.starts.tolist() == entity_starts(checked.prices["entity_id"]).tolist()
