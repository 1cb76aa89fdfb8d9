"""The generator's structural traits: opt-in, deterministic, limited to the entities they
name, and they make the fragile ones likelier to be hit."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stabfrag.analysis.labels import read_labels
from stabfrag.schema import date_span
from stabfrag.synth import generate, labels_from_events


def test_structure_is_deterministic_and_touches_only_what_it_names() -> None:
    plain = generate(120, 900, seed=2)
    a = generate(120, 900, seed=2, structural=True)
    b = generate(120, 900, seed=2, structural=True)
    assert a.prices.equals(b.prices) and a.events.equals(b.events)
    assert plain.traits is None and a.traits is not None and a.fundamentals is not None
    # A company with debt/equity at most 1 that no extra event hit trades exactly as
    # in the plain panel: the structure's draws come from their own generator.
    hit = a.events.filter(pl.col("event_id").str.starts_with("LEVERAGE"))["entity_id"]
    calm = a.traits.filter(
        (pl.col("debt_equity") <= 1.0) & ~pl.col("entity_id").is_in(hit.implode())
    )["entity_id"]
    levered = a.traits.filter(pl.col("debt_equity") > 1.0)["entity_id"]
    assert calm.len() > 10 and levered.len() > 10
    funds = a.traits.filter(pl.col("fund_leverage") != 0)["entity_id"]
    for ids, same in ((calm, True), (levered, False), (funds, False)):
        mine = a.prices.filter(pl.col("entity_id").is_in(ids.implode()))["close"]
        theirs = plain.prices.filter(pl.col("entity_id").is_in(ids.implode()))["close"]
        assert mine.equals(theirs) is same


def test_fragile_entities_are_hit_more_and_the_events_say_which() -> None:
    market = generate(400, 2520, seed=9, structural=True)
    assert market.traits is not None
    own = (
        market.events.filter(pl.col("event_type").is_in(["BLOWUP", "CREDIT_STRESS"]))
        .select("entity_id")
        .unique()
        .with_columns(pl.lit(True).alias("hit"))
    )
    rates = (
        market.traits.drop_nulls("debt_equity")
        .join(own, on="entity_id", how="left")
        .group_by(pl.col("debt_equity") > 2.0)
        .agg(pl.col("hit").fill_null(False).mean())
        .sort("debt_equity")
    )["hit"].to_list()
    low, high = rates
    assert high > 3 * low


def test_fundamentals_are_published_after_the_quarter_and_track_leverage() -> None:
    market = generate(120, 900, seed=2, structural=True)
    assert market.fundamentals is not None and market.traits is not None
    f = market.fundamentals
    assert set(f["field"]) == {"leverage", "interest_cover", "profitability", "size"}
    assert f["date"].max() <= market.prices["date"].max()
    lev = (
        f.filter(pl.col("field") == "leverage")
        .group_by("entity_id")
        .agg(pl.col("value").median())
        .join(market.traits, on="entity_id")
    )
    assert lev.select(pl.corr("value", "debt_equity")).item() > 0.95


def test_labels_of_a_structural_panel_give_each_state_one_label(tmp_path: Path) -> None:
    """An entity blown up during its own credit stress keeps the earlier label (this panel
    has such an overlap, which evaluate refused)."""
    market = generate(400, 2520, seed=11, structural=True)
    labels = labels_from_events(market.events, *date_span(market.prices["date"]))
    own = market.events.filter(pl.col("scope") == "ENTITY").filter(
        pl.col("event_type").is_in(["BLOWUP", "CREDIT_STRESS"])
    )
    assert own["entity_id"].is_duplicated().any()
    path = tmp_path / "labels.csv"
    labels.write_csv(path)
    assert read_labels(path).height == labels.height
