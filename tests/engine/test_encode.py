"""join_scenarios: one joint computation per version of the scenario library."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import polars as pl

from stabfrag.model.encode import join_scenarios
from stabfrag.schema import DIM


def test_library_versions_come_in_date_order_whatever_their_keys() -> None:
    """The builder lays the parts' rows end to end: in date order they need no sort."""
    dates = [dt.date(2020, 1, 31) + dt.timedelta(days=30 * i) for i in range(6)]
    # Keys that sort against the dates: the newest version has the smallest key.
    key_of = {d: ("b",) if i < 2 else ("c",) if i < 4 else ("a",) for i, d in enumerate(dates)}
    rng = np.random.default_rng(3)
    spaces = {
        k: SimpleNamespace(vectors=v, branch=v, high=np.array([True, False, False]))
        for k in set(key_of.values())
        for v in [rng.normal(size=(3, DIM))]
    }
    library = SimpleNamespace(
        key=key_of.__getitem__, space=spaces.__getitem__, prepare=lambda last: None
    )
    models = SimpleNamespace(joint=SimpleNamespace(tau=0.1))
    as_of = pl.Series("as_of_date", [d for d in dates for _ in range(4)])
    z_stab = rng.normal(size=(as_of.len(), DIM)).astype(np.float32)
    parts = join_scenarios(
        models,  # type: ignore[arg-type]
        library,  # type: ignore[arg-type]
        as_of,
        z_stab,
        weights={"stab": 1.0, "scen": 0.5, "prof": 0.25},
    )
    firsts = [part.dates[0] for part in parts]
    assert firsts == sorted(firsts)
    assert [d for part in parts for d in part.dates] == dates
    rows = np.concatenate([np.flatnonzero(part.rows) for part in parts])
    assert rows.tolist() == list(range(as_of.len()))  # end to end, every row once
