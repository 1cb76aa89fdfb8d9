"""The joint space means something on generated data with known events."""

from __future__ import annotations

import polars as pl

from stabfrag.sinks.dataset import read_table
from stabfrag.synth import Market
from tests.conftest import event_dates

CRASH_TYPES = ("EQUITY_CRASH", "FX_CRISIS", "VOL_SPIKE")


def _states(out, as_of) -> pl.DataFrame:
    joint = read_table(out, "joint_embeddings", as_of)
    scen = read_table(out, "scenarios", as_of).select(
        pl.col("scenario_id").alias("nearest_scenario_id"), "shock_type", "severity"
    )
    feats = read_table(out, "features", as_of).select("entity_id", "vol_21", "dd_252", "ret_63")
    return (
        joint.filter(pl.col("kind") == "entity")
        .join(scen, on="nearest_scenario_id", how="left")
        .join(feats, on="entity_id", how="left")
    )


def test_crash_states_are_nearest_crash_scenarios(built, market: Market) -> None:
    crash = event_dates(market, "CRASH")[0]
    states = _states(built, crash)
    share = states.select(pl.col("shock_type").is_in(CRASH_TYPES).mean()).item()
    assert share >= 0.8, f"only {share:.2f} of states at the crash end are nearest a crash type"


def test_crash_fragility_above_calm(built, market: Market) -> None:
    crash = event_dates(market, "CRASH")[0]
    calm = market.prices["date"].max()
    f_crash = _states(built, crash)["fragility"].median()
    f_calm = _states(built, calm)["fragility"].median()
    assert f_crash > f_calm + 0.2, f"median fragility crash {f_crash:.3f} vs calm {f_calm:.3f}"


def test_blown_up_entity_more_fragile_than_calm_entities_same_date(built, market: Market) -> None:
    blowups = market.events.filter(pl.col("event_type") == "BLOWUP")
    gaps = []
    for eid, end in blowups.select("entity_id", "end_date").iter_rows():  # eight events
        states = _states(built, end)
        hit = states.filter(pl.col("entity_id") == eid)
        if hit.height == 0:  # the entity may have no state (delisted, too young)
            continue
        calm = states.filter(pl.col("entity_id") != eid)["fragility"].median()
        gaps.append(hit["fragility"].item() - calm)
    assert len(gaps) >= 5
    wins = sum(g > 0 for g in gaps)
    detail = ", ".join(f"{g:+.3f}" for g in gaps)
    assert wins >= len(gaps) - 1, f"fragility gap blow-up minus median: {detail}"


def test_calm_entities_are_not_nearest_high_severity(built, market: Market) -> None:
    calm_date = market.prices["date"].max()
    states = _states(built, calm_date)
    calm = states.filter(
        (pl.col("vol_21") < pl.col("vol_21").median())
        & (pl.col("dd_252") > -0.1)
        & (pl.col("ret_63") > 0)
    )
    assert calm.height >= 5
    high = calm.filter(pl.col("severity") == "HIGH")
    assert high.height == 0, (
        f"calm states nearest HIGH: {high.select('entity_id', 'nearest_scenario_id').rows()}"
    )
