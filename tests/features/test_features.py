from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stabfrag.features.plan import compute_features
from stabfrag.features.registry import FEATURE_NAMES, feature_set_hash
from tests.conftest import random_panel
from tests.features.oracle import entity_features


def _compare(panel: pl.DataFrame) -> None:
    got = compute_features(panel).drop("_pos")
    assert got.height == panel.height
    for (eid,), part in panel.group_by(["entity_id"], maintain_order=True):
        mine = got.filter(pl.col("entity_id") == eid)
        vol = part["volume"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ref = entity_features(
            part["close"].to_numpy(),
            vol,
            part["high"].to_numpy(),
            part["low"].to_numpy(),
            part["spread_bps"].fill_null(np.nan).to_numpy(),
        )
        for name in FEATURE_NAMES:
            a = mine[name].fill_null(np.nan).to_numpy()
            b = ref[name]
            b = np.where(np.isfinite(b), b, np.nan)
            assert np.array_equal(np.isnan(a), np.isnan(b)), f"{eid} {name}: null pattern differs"
            ok = ~np.isnan(b)
            np.testing.assert_allclose(a[ok], b[ok], rtol=1e-9, atol=1e-12, err_msg=f"{eid} {name}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), entities=st.integers(1, 4))
def test_features_match_numpy_oracle(seed: int, entities: int) -> None:
    _compare(random_panel(seed, entities, 420))


def test_oracle_on_long_panel() -> None:
    # Long enough for every lagged feature (294 rows back) on several entities.
    _compare(random_panel(5, 3, 700, with_nulls=False))


def test_no_look_ahead() -> None:
    panel = random_panel(1, 3, 600)
    as_of = panel["date"].sort()[panel.height // 2]
    before = compute_features(panel).filter(pl.col("date") <= as_of).drop("_pos")
    rng = np.random.default_rng(0)
    later = pl.col("date") > as_of
    changed = panel.with_columns(
        pl.when(later)
        .then(pl.col("close") * float(rng.uniform(0.2, 5)))
        .otherwise(pl.col("close")),
        pl.when(later).then(0.0).otherwise(pl.col("volume")).alias("volume"),
    )
    extra = panel.filter(later).with_columns(pl.col("date") + pl.duration(days=1000))
    changed = pl.concat([changed, extra]).sort("entity_id", "date")
    after = compute_features(changed).filter(pl.col("date") <= as_of).drop("_pos")
    assert before.equals(after)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_entity_independence(seed: int) -> None:
    panel = random_panel(seed, 4, 500, min_len=300)
    alone = compute_features(panel.filter(pl.col("entity_id") == "E1.US")).drop("_pos")
    others = random_panel(seed + 1, 3, 500).with_columns(
        pl.format("Z{}", pl.col("entity_id")).alias("entity_id")
    )
    crowd = pl.concat([panel, others]).sort("entity_id", "date")
    together = compute_features(crowd).filter(pl.col("entity_id") == "E1.US").drop("_pos")
    assert alone.equals(together)


def test_window_not_full_is_null() -> None:
    panel = random_panel(4, 1, 80, with_nulls=False, min_len=64).head(64)
    got = compute_features(panel)
    assert got["vol_21"][:21].is_null().all() and got["vol_21"][21] is not None
    assert got["vol_63"][:63].is_null().all() and got["vol_63"][63] is not None
    assert got["vol_252"].is_null().all()
    assert got["dd_252"].is_null().all()
    assert got["max_dd_63"][:62].is_null().all() and got["max_dd_63"][62] is not None
    last = got.row(-1, named=True)
    assert last["features_null"] == sum(last[n] is None for n in FEATURE_NAMES)


def test_unknown_volume_nulls_liquidity_window() -> None:
    panel = random_panel(6, 1, 200, with_nulls=False, min_len=150).head(150)
    panel = panel.with_columns(
        pl.when(pl.int_range(pl.len()) == 100)
        .then(None)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    got = compute_features(panel)
    # rows 100..162 hold the unknown volume in their 63-day window
    assert got["amihud_63"][100:150].is_null().all()
    assert got["zero_volume_frac_63"][100:150].is_null().all()
    assert got["amihud_63"][99] is not None


def test_at_filter_matches_full() -> None:
    panel = random_panel(7, 3, 500)
    as_of = dt.date(2001, 1, 1)
    full = compute_features(panel).filter(pl.col("date") <= as_of)
    rows = np.flatnonzero((panel["date"] <= as_of).to_numpy())
    some = compute_features(panel, rows=rows)
    assert full.equals(some)


def test_feature_hash_is_stable() -> None:
    assert feature_set_hash() == feature_set_hash()
    assert len(feature_set_hash()) == 64


@pytest.mark.parametrize("n", [63, 252])
def test_days_since_peak_is_zero_at_new_high(n: int) -> None:
    close = np.linspace(10, 20, 300)
    panel = pl.DataFrame(
        {
            "entity_id": "A",
            "date": [dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in range(300)],
            "close": close,
            "volume": 1.0,
            "high": None,
            "low": None,
            "spread_bps": None,
        },
    ).with_columns(pl.col(c).cast(pl.Float64) for c in ("high", "low", "spread_bps", "volume"))
    got = compute_features(panel)
    assert got["days_since_peak_252"][299] == 0
    assert got["dd_252"][299] == 0


def test_blocks_of_entities_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import stabfrag.features.plan as features

    panel = random_panel(9, 6, 400)
    whole = compute_features(panel)
    monkeypatch.setattr(features, "FEATURE_BLOCK_ROWS", 300)
    assert compute_features(panel).equals(whole)
    rows = np.arange(0, panel.height, 5)
    assert compute_features(panel, rows=rows).equals(whole.filter(pl.col("_pos").is_in(rows)))
