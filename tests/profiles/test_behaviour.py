"""Behaviour traits: the definitions against a naive numpy twin, no look-ahead, and the
beta a leveraged or inverse fund shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.ingest.prices import read_prices, validate
from stabfrag.profiles.behaviour import TRAIT_NAMES, behaviour
from stabfrag.profiles.inputs import profile_inputs
from stabfrag.synth import generate
from tests.profiles.oracle import entity_traits


def as_read(prices: pl.DataFrame, folder: Path) -> pl.DataFrame:
    """`prices` as the reader gives them (the columns validate expects)."""
    path = folder / "prices.parquet"
    prices.write_parquet(path)
    return read_prices(path)


@pytest.fixture(scope="module")
def structural(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """A small structural market's valid prices: funds, levered companies, a market."""
    market = generate(60, 900, seed=3, structural=True)
    return validate(as_read(market.prices, tmp_path_factory.mktemp("s")), min_prices=0).prices


def test_traits_equal_the_numpy_twin(structural: pl.DataFrame) -> None:
    ids = structural["entity_id"].unique().sort().to_list()[:6]
    prices = structural.filter(pl.col("entity_id").is_in(ids))
    # A zero-volume stretch and a ragged start exercise the volume traits and short windows.
    prices = prices.with_columns(
        pl.when((pl.col("entity_id") == ids[1]) & (pl.int_range(pl.len()).over("entity_id") < 40))
        .then(0.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    ).filter(~((pl.col("entity_id") == ids[2]) & (pl.int_range(pl.len()).over("entity_id") < 300)))
    market = ids[0]
    got = behaviour(prices, market=market)
    assert got["beta"].drop_nulls().len() > 0 and got["vol_of_vol_504"].drop_nulls().len() > 0
    m = prices.filter(pl.col("entity_id") == market).select("date", pl.col("close").alias("mc"))
    for entity in ids:
        rows = prices.filter(pl.col("entity_id") == entity).join(m, on="date", how="left")
        want = entity_traits(
            rows["close"].to_numpy(), rows["volume"].to_numpy(), rows["mc"].to_numpy()
        )
        mine = got.filter(pl.col("entity_id") == entity)
        for name in TRAIT_NAMES:
            actual = mine[name].fill_null(np.nan).to_numpy()
            np.testing.assert_allclose(
                actual, want[name], rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=name
            )


def test_a_3x_fund_shows_beta_3_and_an_inverse_fund_minus_1(structural: pl.DataFrame) -> None:
    market = generate(60, 900, seed=3, structural=True)
    assert market.traits is not None and market.entities is not None
    the_market = market.entities.filter(pl.col("entity_type") == "MARKET")["entity_id"][0]
    traits = behaviour(structural, market=the_market)
    last = traits.group_by("entity_id").agg(pl.col("beta").last())
    funds = (
        market.traits.filter(pl.col("fund_leverage") != 0)
        .join(last, on="entity_id")
        .drop_nulls("beta")  # listed late: less than two years of prices
    )
    assert set(funds["fund_leverage"]) >= {3.0, -1.0}
    for lev, beta in zip(funds["fund_leverage"], funds["beta"], strict=True):
        assert beta == pytest.approx(lev, abs=0.15 * abs(lev)), (lev, beta)


def test_a_profile_as_of_d_reads_nothing_after_d(structural: pl.DataFrame, tmp_path: Path) -> None:
    """The inputs as of D are the same from the whole history and from the history cut at
    D, with a bad tick on D itself (judged only by the next close)."""
    day = structural["date"].unique().sort()[700]
    victim = structural.filter(pl.col("date") == day)["entity_id"].sort()[3]
    spiked = structural.with_columns(
        pl.when((pl.col("entity_id") == victim) & (pl.col("date") == day))
        .then(pl.col(c) * 3)
        .otherwise(pl.col(c))
        .alias(c)
        for c in ("close", "high", "low")
    )
    full = validate(as_read(spiked, tmp_path), min_prices=0)
    cut = validate(as_read(spiked.filter(pl.col("date") <= day), tmp_path), min_prices=0)
    assert full.ticks.height == 1 and cut.ticks.height == 0  # the tick is known after D only
    later = structural["date"].unique().sort()[650]
    dates: list[dt.date] = [later, day]
    a, _ = profile_inputs(full.prices, dates, market=None, ticks=full.ticks)
    b, _ = profile_inputs(cut.prices, dates, market=None, ticks=cut.ticks)
    assert a.height > 0
    assert a.sort("as_of_date", "entity_id").equals(b.sort("as_of_date", "entity_id"))
