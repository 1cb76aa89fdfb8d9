"""Who gets hurt: forward drawdowns and the within-date rank IC, against plain twins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabfrag.analysis.metrics import episode_match, library_separation, macro
from stabfrag.analysis.who import (
    FALL,
    FORWARD_ROWS,
    MIN_ENTITIES,
    forward_drawdown,
    rank_ic,
    who_figures,
)
from stabfrag.schema import DATE, ENTITY


def _prices(rng: np.random.Generator, entities: int, days: int) -> pl.DataFrame:
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    rows = []
    for e in range(entities):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        start = int(rng.integers(0, days // 3))  # ragged starts
        rows += [(f"E{e:02d}", dates[i], float(close[i])) for i in range(start, days)]
    return pl.DataFrame(
        rows, schema={ENTITY: pl.String, DATE: pl.Date, "close": pl.Float64}, orient="row"
    )


def test_forward_drawdown_equals_a_plain_loop(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    prices = _prices(rng, 4, 200)
    path = tmp_path / "prices.parquet"
    prices.write_parquet(path)
    states = prices.select(ENTITY, DATE).sample(60, seed=1)
    got = forward_drawdown(path, states)
    want = []
    for entity, day in states.iter_rows():  # the twin: one state at a time
        rows = prices.filter(pl.col(ENTITY) == entity).sort(DATE)
        closes, dates = rows["close"].to_list(), rows[DATE].to_list()
        i = dates.index(day)
        ahead = closes[i + 1 : i + 1 + FORWARD_ROWS]
        want.append(1 - min(ahead) / closes[i] if len(ahead) == FORWARD_ROWS else np.nan)
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, equal_nan=True)
    assert np.isnan(got).any() and np.isfinite(got).any()


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(MIN_ENTITIES - 2, MIN_ENTITIES + 15),
    st.booleans(),
)
def test_rank_ic_equals_spearman_per_date(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    dates = np.repeat(
        np.array(["2020-01-31", "2020-02-28", "2020-03-31"], dtype="datetime64[D]"), n
    )
    score = rng.normal(size=dates.size)
    fwd = 0.5 * score + rng.normal(size=dates.size)
    if ties:
        score = np.round(score, 1)
    score[rng.integers(0, dates.size, 3)] = np.nan  # missing scores are left out
    got = rank_ic(score, fwd, dates)
    frame = pd.DataFrame({"d": dates, "s": score, "f": fwd}).dropna()
    want = {  # Spearman: Pearson's correlation of the average ranks (ties share theirs)
        d.date(): np.corrcoef(g["s"].rank(method="average"), g["f"].rank(method="average"))[0, 1]
        for d, g in frame.groupby("d")
        if len(g) >= MIN_ENTITIES
    }
    assert dict(zip(got["as_of_date"].to_list(), got["ic"].to_list(), strict=True)) == (
        pytest.approx(want, rel=1e-9)
    )


def test_who_figures_separate_the_dates_before_falls() -> None:
    by_date = pl.DataFrame(
        {
            "as_of_date": [dt.date(2020, m, 1) for m in (1, 2, 3, 4)],
            "states": [30, 30, 30, 30],
            "median_fwd_dd": [0.02, FALL + 0.05, 0.03, FALL + 0.01],
            "ic": [0.1, 0.5, float("nan"), 0.7],
        }
    )
    got = who_figures(by_date)
    assert got["dates"] == 3 and got["fall_dates"] == 2  # a NaN date counts nowhere
    assert got["ic"] == pytest.approx((0.1 + 0.5 + 0.7) / 3)
    assert got["ic_before_falls"] == pytest.approx(0.6)
    assert np.isnan(who_figures(by_date.head(0))["ic"])


def test_macro_episode_match_weighs_episodes_not_states() -> None:
    matches = {
        "GFC": {"states": 900, "top1": 0.9, "top3": 1.0},
        "FLASH": {"states": 10, "top1": 0.1, "top3": 0.5},
    }
    assert macro(matches) == {"episodes": 2, "top1": pytest.approx(0.5), "top3": 0.75}
    assert np.isnan(macro({})["top1"])


def test_episode_match_says_which_scenario_names_each_episode() -> None:
    # Two historical scenarios and a synthetic one; GFC's three states: two nearest GFC,
    # one nearest 2011 (the synthetic scenario, nearer still, is not a candidate).
    table = pl.DataFrame(
        {
            "scenario_id": ["GFC", "Y2011", "SYN"],
            "kind": ["historical", "historical", "synthetic"],
        }
    )
    scenarios = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    states = np.array([[0.9, 0.1, 0.99], [0.8, 0.3, 0.0], [0.2, 0.9, 0.0], [0.0, 1.0, 0.0]])
    day = [dt.date(2008, 10, 31), dt.date(2008, 11, 28)]
    tagged = pl.DataFrame(
        {
            "scenario_id": ["GFC", "GFC", "GFC", "GFC"],
            "label": ["stress", "stress", "stress", "calm"],
            "as_of_date": [day[0], day[0], day[1], dt.date(2010, 1, 29)],
        }
    )
    got = episode_match(states, scenarios, table, tagged)["GFC"]
    # Month-end states of one date share their market: the dates say how many draws.
    assert got["states"] == 3 and got["dates"] == 2 and got["top1"] == pytest.approx(2 / 3)
    assert got["named_as"] == {"GFC": pytest.approx(2 / 3), "Y2011": pytest.approx(1 / 3)}
    assert list(got["named_as"]) == ["GFC", "Y2011"]


def test_library_separation_counts_same_type_nearest_neighbours() -> None:
    # Two tight pairs of one type each, and a fifth scenario nearest the first pair.
    unit = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99], [0.95, 0.31]], dtype=float)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    types = np.array(["CRASH", "CRASH", "RATES", "RATES", "FX"])
    got = library_separation(unit, types, distance=False)
    assert got == {"scenarios": 5, "same_type_nearest": pytest.approx(4 / 5)}
    one_score = library_separation(np.array([0.1, 0.2, 0.9]), types[:3], distance=True)
    assert one_score["same_type_nearest"] == pytest.approx(2 / 3)
