"""generate --factors writes its market's episodes as historical scenarios, and its labels
name them: the episode match has a known answer on a generated market."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from stabfrag.scenarios.library import load_library
from stabfrag.synth import EVENT_SHOCK, Market, generate, write_market
from stabfrag.synth.episodes import LIBRARY_FILE, REFERENCE, market_episodes
from stabfrag.synth.shocks import FACTOR_IDS
from tests.conftest import market_episodes_of


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Market, dict[str, Path]]:
    market = generate(120, 1500, seed=9, factors=True)
    return market, write_market(market, tmp_path_factory.mktemp("gen"))


def test_each_market_episode_is_a_historical_scenario_on_its_type_s_factor(
    written: tuple[Market, dict[str, Path]],
) -> None:
    market, paths = written
    library = {s.id: s for s in load_library(paths["scenarios"])}
    shipped = {s.id for s in load_library()}
    episodes = market_episodes_of(market)
    assert episodes.height >= 3
    assert set(library) == shipped | set(episodes["event_id"])  # the shipped ones kept
    for ev in episodes.iter_rows(named=True):
        s = library[ev["event_id"]]
        assert s.kind == "historical" and s.shock_type == EVENT_SHOCK[ev["event_type"]]
        assert (s.episode_start, s.episode_end) == (ev["start_date"], ev["end_date"])
        assert s.reference_entity == FACTOR_IDS[REFERENCE[s.shock_type]]
        assert s.known_on(ev["end_date"]) and not s.known_on(ev["end_date"] - dt.timedelta(1))
    # The moves each was made with: a crash's fall is its magnitude, a rates shock's
    # bond fund falls, an FX crisis's dollar rises.
    moves = market_episodes(market.events)
    for ep in moves.iter_rows(named=True):
        shocks = dict(library[ep["event_id"]].factor_shocks)
        assert shocks == pytest.approx({f: ep[f] for f in shocks}, abs=5e-5)
        if ep["event_type"] == "CRASH":
            assert shocks["equity"] == pytest.approx(-ep["magnitude"], abs=5e-5)
        if ep["shock_type"] == "RATES_SHOCK":
            assert shocks["rates"] < -0.05
        if ep["shock_type"] == "FX_CRISIS":
            assert shocks["fx"] > 0.05


def test_the_labels_name_each_market_episode_s_scenario_and_nothing_else(
    written: tuple[Market, dict[str, Path]],
) -> None:
    market, paths = written
    labels = pl.read_csv(paths["labels"], try_parse_dates=True)
    named = labels.filter(pl.col("scenario_id").is_not_null())
    assert named["scenario_id"].sort().to_list() == sorted(market_episodes_of(market)["event_id"])
    assert (named["scenario_id"] == named["source"]).all()
    assert (named["label"] == "stress").all() and named["entity_id"].is_null().all()


def test_a_market_without_factor_series_writes_no_library(tmp_path: Path) -> None:
    paths = write_market(generate(60, 900, seed=9), tmp_path)
    assert "scenarios" not in paths and not (tmp_path / "scenarios").exists()
    labels = pl.read_csv(paths["labels"])
    assert labels["scenario_id"].is_null().all()


def test_the_library_is_written_whole_and_the_same_for_the_same_seed(
    written: tuple[Market, dict[str, Path]], tmp_path: Path
) -> None:
    market, paths = written
    again = write_market(generate(120, 1500, seed=9, factors=True), tmp_path)
    first = (paths["scenarios"] / LIBRARY_FILE).read_bytes()
    assert (again["scenarios"] / LIBRARY_FILE).read_bytes() == first
    assert not [p for p in paths["scenarios"].iterdir() if p.suffix != ".toml"]


def test_evaluate_matches_each_generated_episode_against_the_market_s_library(
    written: tuple[Market, dict[str, Path]], tmp_path: Path
) -> None:
    """A build given the market's library scores every market episode's match (the labels
    name no scenario it lacks), for the model and for the baselines."""
    import json

    from typer.testing import CliRunner

    from stabfrag.cli import app
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop

    market, paths = written
    episodes = market_episodes_of(market)
    inside = [s + (e - s) / 2 for s, e in episodes.select("start_date", "end_date").iter_rows()]
    last = market.prices["date"].max()
    config = BuildConfig(
        prices=paths["prices"],
        entities=paths["entities"],
        out=tmp_path / "out",
        scenarios=paths["scenarios"],
        factors={role: FACTOR_IDS[role] for role in ("equity", "rates", "credit", "fx")},
    )
    loop.run(config, sorted({*inside, *episodes["end_date"], last}))
    res = CliRunner().invoke(
        app,
        ["evaluate", "--out", str(config.out), "--labels", str(paths["labels"]), "--json"],
    )
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert not [w for w in report["warnings"] if "does not hold" in w]
    for model, match in report["episode_match"].items():
        assert set(episodes["event_id"]) <= set(match), model
        assert match["macro"]["episodes"] == episodes.height, model
