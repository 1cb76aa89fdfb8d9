"""SPEC §3's gap rule: a gap of more than MAX_GAP_DAYS calendar days between two valid prices
ends an entity's history. A 10-year hole once counted as adjacent days (vol_252 0.38
against 0.23 for the same series without the hole)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.ingest.reasons import MAX_GAP_DAYS
from stabfrag.sinks.dataset import read_table

ENTITY = "GAPPY"


def _series(days: np.ndarray, seed: int, vol: float) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, vol / np.sqrt(252), len(days))))
    return pl.DataFrame(
        {"entity_id": ENTITY, "date": pl.Series(days.astype("datetime64[D]")).cast(pl.Date),
         "close": close, "volume": np.full(len(days), 1e6)}
    )  # fmt: skip


def _prices(tmp_path: Path, *, with_old: bool, after: int) -> Path:
    """A calm stretch, a ten-year hole, then `after` prices of a wilder one."""
    old = np.busday_offset("2000-01-03", np.arange(600), roll="forward")
    new = np.busday_offset("2012-01-03", np.arange(after), roll="forward")
    parts = [_series(new, 2, 0.45)]
    if with_old:
        parts.insert(0, _series(old, 1, 0.10))
    path = tmp_path / f"prices_{with_old}_{after}.parquet"
    pl.concat(parts).write_parquet(path)
    return path


def _state(path: Path, out: Path, as_of: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    loop.run(BuildConfig(prices=path, out=out), [as_of])
    return read_table(out, "features", as_of), read_table(out, "rejects", as_of)


def test_a_long_gap_restarts_the_history(tmp_path: Path) -> None:
    as_of = dt.date(2013, 6, 28)
    with_hole, _ = _state(_prices(tmp_path, with_old=True, after=400), tmp_path / "a", as_of)
    alone, _ = _state(_prices(tmp_path, with_old=False, after=400), tmp_path / "b", as_of)
    assert with_hole.height == alone.height == 1
    features = [c for c in alone.columns if c not in ("as_of_date", "entity_id")]
    assert with_hole.select(features).equals(alone.select(features))
    assert with_hole["vol_252"][0] > 0.3  # the wild stretch's own, not the calm one's


def test_too_few_prices_since_a_gap_is_history_gap(tmp_path: Path) -> None:
    as_of = dt.date(2012, 2, 29)  # about 40 prices after the hole
    states, rejects = _state(_prices(tmp_path, with_old=True, after=60), tmp_path / "a", as_of)
    assert states.height == 0
    (row,) = rejects.filter(pl.col("entity_id") == ENTITY).iter_rows(named=True)
    assert row["reason"] == "history_gap" and f"more than {MAX_GAP_DAYS} days" in row["detail"]
    # Without the old stretch the same entity is simply young.
    _, young = _state(_prices(tmp_path, with_old=False, after=60), tmp_path / "b", as_of)
    assert young.filter(pl.col("entity_id") == ENTITY)["reason"].to_list() == [
        "insufficient_history"
    ]


def test_a_backfill_across_a_gap_writes_what_builds_write(tmp_path: Path) -> None:
    path = _prices(tmp_path, with_old=True, after=400)
    dates = [dt.date(2001, 6, 29), dt.date(2012, 2, 29), dt.date(2012, 8, 31), dt.date(2013, 6, 28)]
    loop.run(BuildConfig(prices=path, out=tmp_path / "range", chunk_days=5000), dates)
    for day in dates:
        loop.run(BuildConfig(prices=path, out=tmp_path / f"one{day}"), [day])
        for table in ("features", "rejects", "joint_embeddings"):
            assert read_table(tmp_path / "range", table, day).equals(
                read_table(tmp_path / f"one{day}", table, day)
            ), (table, day)
