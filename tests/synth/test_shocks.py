"""generate --factors: cross-asset factor series and market episodes of every shock type,
opt-in, deterministic, with the signature and the victims each type promises."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from stabfrag.scenarios.library import load_library
from stabfrag.schema import date_span
from stabfrag.synth import Market, generate, labels_from_events
from stabfrag.synth.shocks import FACTOR_IDS, RATE_SECTORS, SIGNATURES
from tests.conftest import market_episodes_of


@pytest.fixture(scope="module")
def market() -> Market:
    return generate(400, 2520, seed=5, factors=True)


def _moves(market: Market, start: object, end: object) -> pl.DataFrame:
    """Each entity's log return from the day before `start` to `end`."""
    p = market.prices
    before = p.filter(pl.col("date") < start).group_by("entity_id").agg(pl.col("close").last())
    after = p.filter(pl.col("date") <= end).group_by("entity_id").agg(pl.col("close").last())
    return before.join(after, on="entity_id", suffix="_end").select(
        "entity_id", (pl.col("close_end") / pl.col("close")).log().alias("move")
    )


def test_factors_are_opt_in_deterministic_and_leave_the_panel_before_them() -> None:
    plain = generate(150, 1300, seed=4)
    a = generate(150, 1300, seed=4, factors=True)
    b = generate(150, 1300, seed=4, factors=True)
    assert a.prices.equals(b.prices) and a.events.equals(b.events)
    assert plain.prices.equals(generate(150, 1300, seed=4).prices)
    ids = set(FACTOR_IDS.values())
    assert set(a.entities["entity_id"]) - set(plain.entities["entity_id"]) == ids
    factor_rows = a.prices.filter(pl.col("entity_id").is_in(list(ids)))
    assert factor_rows.height == len(ids) * plain.prices["date"].n_unique()
    first_new = (
        market_episodes_of(a)
        .filter(~pl.col("event_type").is_in(["CRASH", "VOL_SPIKE"]))["start_date"]
        .min()
    )
    early = [
        m.prices.filter(pl.col("date") < first_new, ~pl.col("entity_id").is_in(list(ids)))
        for m in (plain, a)
    ]
    assert (
        early[0]
        .select("entity_id", "date", "close")
        .equals(early[1].select("entity_id", "date", "close"))
    )


def test_every_shock_type_of_the_library_has_labelledmarket_episodes_of(market: Market) -> None:
    labels = labels_from_events(market.events, *date_span(market.prices["date"]))
    market_wide = labels.filter(pl.col("label") == "stress", pl.col("entity_id").is_null())
    library = {s.shock_type for s in load_library() if s.shock_type != "BASELINE"}
    assert set(market_wide["shock_type"]) == library


@pytest.mark.parametrize(
    ("kind", "factor", "sign"),
    [
        ("CREDIT_CRISIS", "credit", -1),
        ("RATES_SHOCK", "rates", -1),
        ("FX_CRISIS", "fx", 1),
        ("CRASH", "rates", 1),  # bonds rally in an equity crash
        ("CRASH", "equity", -1),
    ],
)
def test_each_episode_moves_its_own_factor(
    market: Market, kind: str, factor: str, sign: int
) -> None:
    episodes = market_episodes_of(market).filter(pl.col("event_type") == kind)
    assert episodes.height >= 1
    for start, end in episodes.select("start_date", "end_date").iter_rows():
        moves = _moves(market, start, end)
        move = moves.filter(pl.col("entity_id") == FACTOR_IDS[factor])["move"][0]
        promised = abs(SIGNATURES[kind].moves.get(factor, 0.0)) or 0.1
        assert sign * move > promised / 2, (kind, factor, start, move)


def test_each_type_hits_its_own_victims_harder(market: Market) -> None:
    ents = market.entities.filter(pl.col("entity_type") != "MARKET")
    small = market.prices.group_by("entity_id").agg(pl.col("volume").median().alias("v"))
    ents = ents.join(small, on="entity_id").with_columns(
        (pl.col("v") <= pl.col("v").quantile(0.2)).alias("small")
    )
    victims = {
        "CREDIT_CRISIS": pl.col("entity_type") == "ISSUER",
        "RATES_SHOCK": pl.col("sector").is_in(list(RATE_SECTORS)),
        "FX_CRISIS": pl.col("region") != "US",
        "MARKET_LIQUIDITY": pl.col("small"),
    }
    for kind, who in victims.items():
        episodes = market_episodes_of(market).filter(pl.col("event_type") == kind)
        assert episodes.height >= 1, kind
        start, end = episodes.select("start_date", "end_date").row(0)
        moves = _moves(market, start, end).join(ents, on="entity_id")
        hit = moves.filter(who)["move"].median()
        spared = moves.filter(~who)["move"].median()
        assert hit < spared - 0.03, (kind, hit, spared)
        assert np.isfinite([hit, spared]).all()
