"""A historical episode's market context: the context its last day had in the build, point
in time, for a model whose manifest asks for it; the models before it keep their bytes."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.engine.episodes import episode_contexts
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.model.bundle import load_models
from stabfrag.model.encode import date_medians
from stabfrag.model.joint import JOINT_V3, JOINT_V4
from stabfrag.model.scenario_space import (
    EPISODE_CONTEXT,
    MARKET_CONTEXT,
    OWN_CONTEXT,
    ScenarioLibrary,
)
from stabfrag.scenarios.library import Scenario, load_library
from stabfrag.sinks.dataset import read_table
from stabfrag.synth import generate, write_market
from stabfrag.synth.shocks import FACTOR_IDS
from tests.conftest import models_with

MARKET = FACTOR_IDS["equity"]


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_market(generate(120, 1500, seed=9, factors=True), tmp_path_factory.mktemp("p"))


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped models with v4's episode context set each way, and absent."""
    modes = (OWN_CONTEXT, MARKET_CONTEXT, None)
    folders = {str(m): tmp_path_factory.mktemp(f"models_{m}") for m in modes}
    return {str(m): models_with(folders[str(m)], JOINT_V4, **{EPISODE_CONTEXT: m}) for m in modes}


def _episode(panel: dict[str, Path]) -> Scenario:
    """The panel's first generated episode that ends after its first year and a half."""
    library = load_library(panel["scenarios"])
    prices = pl.scan_parquet(panel["prices"]).select(pl.col("date").min()).collect().item()
    return next(
        s
        for s in library
        if s.kind == "historical"
        and s.reference_entity == MARKET
        and s.episode_end is not None
        and s.episode_end > prices + dt.timedelta(days=550)
    )


def test_the_context_is_the_one_a_build_of_the_episode_s_last_day_gives(
    panel: dict[str, Path], tmp_path: Path
) -> None:
    episode = _episode(panel)
    end = episode.episode_end
    assert end is not None
    models = load_models()
    config = BuildConfig(prices=panel["prices"], out=tmp_path / "end")
    loop.run(config, [end])
    states = read_table(config.out, "features", end)
    z = models.scen.standardised(states.select(FEATURE_NAMES))
    median = date_medians(states, z).drop("as_of_date").to_numpy()[0]
    got = episode_contexts(config, models, [episode])
    np.testing.assert_allclose(got[episode.id], median, rtol=0, atol=1e-12)
    # A declared market: its own state that day.
    marked = BuildConfig(prices=panel["prices"], market=MARKET)
    own = states.filter(pl.col("entity_id") == MARKET).select(FEATURE_NAMES)
    np.testing.assert_allclose(
        episode_contexts(marked, models, [episode])[episode.id],
        models.scen.standardised(own)[0],
        rtol=0,
        atol=1e-12,
    )
    # Nothing after the last day: later prices changed, the same bytes.
    prices = pl.read_parquet(panel["prices"])
    later = prices.with_columns(
        pl.when(pl.col("date") > end).then(pl.col("close") * 1.7).otherwise(pl.col("close"))
    )
    changed = tmp_path / "later.parquet"
    later.write_parquet(changed)
    again = episode_contexts(BuildConfig(prices=changed), models, [episode])
    assert np.array_equal(again[episode.id], got[episode.id])
    # An episode whose last day the book does not hold has none.
    early = Scenario(**{**episode.__dict__, "id": "EARLY", "episode_end": dt.date(1990, 1, 5)})
    assert "EARLY" not in episode_contexts(config, models, [early])


def _scenario_rows(out: Path, day: dt.date) -> pl.DataFrame:
    return (
        read_table(out, "joint_embeddings", day)
        .filter(pl.col("kind") == "scenario")
        .select("scenario_id", "vector")
        .sort("scenario_id")
    )


def test_only_a_model_that_asks_gives_an_episode_its_market_s_context(
    panel: dict[str, Path], model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """v4 with the market context moves the historical episodes' vectors (and no other
    scenario's); v4 set to its own context, or without the key, writes the bytes it did."""
    episode = _episode(panel)
    assert episode.episode_end is not None
    day = episode.episode_end + dt.timedelta(days=60)
    rows = {}
    for mode, folder in model_dirs.items():
        out = tmp_path / mode
        config = BuildConfig(
            prices=panel["prices"], out=out, model_dir=folder, scenarios=panel["scenarios"]
        )
        loop.run(config, [day])
        rows[mode] = _scenario_rows(out, day)
    assert rows[OWN_CONTEXT].equals(rows["None"])
    known = load_library(panel["scenarios"])
    ended = {s.id for s in known if s.kind == "historical" and s.known_on(day)}
    assert episode.id in ended
    moved = {
        sid
        for sid, a, b in zip(
            rows[OWN_CONTEXT]["scenario_id"],
            rows[OWN_CONTEXT]["vector"].to_numpy(),
            rows[MARKET_CONTEXT]["vector"].to_numpy(),
            strict=True,
        )
        if not np.array_equal(a, b)
    }
    assert episode.id in moved and moved <= ended


def test_a_model_without_a_context_never_reads_the_book_for_one(panel: dict[str, Path]) -> None:
    """v3 (no key) builds its scenarios without asking for any episode's context."""

    def refuse(episodes: list[Scenario]) -> dict[str, np.ndarray]:
        raise AssertionError("asked for a context")

    models = load_models(None, JOINT_V3)
    library = ScenarioLibrary(
        models,
        load_library(panel["scenarios"]),
        pl.DataFrame(),
        max_staleness_days=7,
        contexts=refuse,
    )
    library.prepare(dt.date(2030, 1, 1))
    assert library.space(library.key(dt.date(2030, 1, 1))).vectors.shape[1] == 384


def test_episode_ends_are_read_in_windows_of_bounded_span() -> None:
    """Close ends share a read, and no read spans more than a year of ends: a library with
    an episode every few months still reads bounded windows of prices."""
    from stabfrag.engine.episodes import SHARED_READ_DAYS, _reads

    monthly = [dt.date(2000, 1, 15) + dt.timedelta(days=30 * k) for k in range(60)]
    runs = _reads(monthly)
    assert [d for run in runs for d in run] == monthly
    assert all((run[-1] - run[0]).days <= SHARED_READ_DAYS for run in runs)
    assert len(runs) == 5
    apart = [dt.date(2008, 12, 12), dt.date(2009, 3, 9), dt.date(2011, 10, 3)]
    assert _reads(apart) == [apart[:2], apart[2:]]


def test_an_episode_known_before_its_end_takes_its_context_once_the_end_is_past(
    panel: dict[str, Path], model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """An episode the library brings in early (`known_from`), on a stand-in path (its
    reference is not in the prices), keeps its own context until its last day and takes
    its market's after it, as an episode known only from its end does."""
    episode = _episode(panel)
    assert episode.episode_start is not None and episode.episode_end is not None
    source = (panel["scenarios"] / "generated.toml").read_text()
    marker = f'id = "{episode.id}"'
    assert marker in source
    stand_in = source.replace(
        f'reference_entity = "{MARKET}"\nepisode_start = {episode.episode_start}',
        f'reference_entity = "NOT.IN.PRICES"\nepisode_start = {episode.episode_start}',
    )
    libraries = {}
    for name, text in (
        ("late", stand_in),
        ("early", stand_in.replace(marker, f"{marker}\nknown_from = {episode.episode_start}")),
    ):
        folder = tmp_path / name
        shutil.copytree(panel["scenarios"], folder)
        (folder / "generated.toml").write_text(text)
        libraries[name] = folder
    assert "known_from" in (libraries["early"] / "generated.toml").read_text()
    during = episode.episode_start + (episode.episode_end - episode.episode_start) / 2
    after = episode.episode_end + dt.timedelta(days=60)
    rows = {}
    for name, folder in libraries.items():
        for mode in (OWN_CONTEXT, MARKET_CONTEXT):
            out = tmp_path / f"{name}_{mode}"
            config = BuildConfig(
                prices=panel["prices"], out=out, model_dir=model_dirs[mode], scenarios=folder
            )
            loop.run(config, [during, after])
            for day in (during, after):
                table = _scenario_rows(out, day).filter(pl.col("scenario_id") == episode.id)
                rows[name, mode, day] = table["vector"].to_numpy()
    assert rows["late", MARKET_CONTEXT, during].size == 0  # not known yet
    # During the episode the early one is its own context under either model ...
    assert np.array_equal(rows["early", MARKET_CONTEXT, during], rows["early", OWN_CONTEXT, during])
    # ... and after its end it is the late one's: its market's context.
    assert np.array_equal(rows["early", MARKET_CONTEXT, after], rows["late", MARKET_CONTEXT, after])
    assert not np.array_equal(rows["late", MARKET_CONTEXT, after], rows["late", OWN_CONTEXT, after])


def test_a_scenario_row_says_when_its_episode_s_context_was_read(
    panel: dict[str, Path], model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """A historical episode in its market's context says so in its row's entity_scope
    and in the date's scenarios table (the last day it was read on); every other
    scenario, and every scenario of a model that keeps an episode's own state, says
    nothing of it."""
    import json

    episode = _episode(panel)
    assert episode.episode_end is not None
    day = episode.episode_end + dt.timedelta(days=60)
    scopes, tables = {}, {}
    for mode in (OWN_CONTEXT, MARKET_CONTEXT):
        out = tmp_path / mode
        config = BuildConfig(
            prices=panel["prices"],
            out=out,
            model_dir=model_dirs[mode],
            scenarios=panel["scenarios"],
        )
        loop.run(config, [day])
        rows = read_table(out, "joint_embeddings", day).filter(pl.col("kind") == "scenario")
        scopes[mode] = {
            sid: json.loads(scope)["metadata"]
            for sid, scope in rows.select("scenario_id", "entity_scope").iter_rows()
        }
        table = read_table(out, "scenarios", day).filter(pl.col("context_as_of").is_not_null())
        tables[mode] = dict(table.select("scenario_id", "context_as_of").iter_rows())
    placed = {
        sid: m["context_as_of"] for sid, m in scopes[MARKET_CONTEXT].items() if "context_as_of" in m
    }
    assert placed[episode.id] == episode.episode_end.isoformat()
    library = {s.id: s for s in load_library(panel["scenarios"])}
    assert all(library[sid].kind == "historical" for sid in placed)
    assert all(str(library[sid].episode_end) == end for sid, end in placed.items())
    assert not any("context_as_of" in m for m in scopes[OWN_CONTEXT].values())
    assert {sid: str(end) for sid, end in tables[MARKET_CONTEXT].items()} == placed
    assert tables[OWN_CONTEXT] == {}


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times prices are computed into states for the episodes' contexts (the
    chunk builder's own states are computed apart)."""
    from stabfrag.engine import states

    calls = [0]
    compute = states.state_features

    def counted(*args: object, **kwargs: object) -> pl.DataFrame:
        calls[0] += 1
        return compute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(states, "state_features", counted)
    return calls


def _grown(panel: dict[str, Path], folder: Path, day: dt.date, **revise: float) -> Path:
    """The panel's prices up to `day` (a file that grows by a day each day); `revise`:
    entity -> a factor on its close of the episode's last day (a revised history)."""
    end = _episode(panel).episode_end
    prices = pl.read_parquet(panel["prices"]).filter(pl.col("date") <= day)
    for entity, factor in revise.items():
        hit = (pl.col("entity_id") == entity) & (pl.col("date") == end)
        prices = prices.with_columns(
            pl.when(hit).then(pl.col("close") * factor).otherwise(pl.col("close"))
        )
    path = folder / f"prices_{day}_{len(revise)}.parquet"
    prices.write_parquet(path)
    return path


@pytest.mark.parametrize("market", [None, MARKET])
def test_a_daily_build_takes_the_contexts_its_folder_kept(
    panel: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, market: str | None
) -> None:
    """A daily build reads every historical episode's last day again (without a market,
    every entity's state that day). The folder keeps the contexts under the digest of the
    rows read: the next day's build, its file grown by a day, computes none of them, and
    writes the bytes a fresh folder writes; a revised close before an episode's end, or a
    damaged kept file, computes them again."""
    episode = _episode(panel)
    assert episode.episode_end is not None
    days = [episode.episode_end + dt.timedelta(days=n) for n in (60, 61, 62)]
    first, grown = _grown(panel, tmp_path, days[0]), _grown(panel, tmp_path, days[1])
    calls = _counted(monkeypatch)
    out = tmp_path / "daily"
    loop.run(
        BuildConfig(prices=first, out=out, market=market, scenarios=panel["scenarios"]), [days[0]]
    )
    assert calls[0] > 0
    calls[0] = 0

    def build(prices: Path, folder: Path) -> pl.DataFrame:
        config = BuildConfig(prices=prices, out=folder, market=market, scenarios=panel["scenarios"])
        loop.run(config, [days[1]])
        return _scenario_rows(folder, days[1])

    kept = build(grown, out)
    assert calls[0] == 0
    assert kept.equals(build(grown, tmp_path / "fresh"))
    # (With a market declared only its rows are read: a revision of another entity
    # changes no context, and is rightly not computed again.)
    entity = market or pl.read_parquet(first)["entity_id"].sort()[3]
    revised = _grown(panel, tmp_path, days[1], **{entity: 1.05})
    calls[0] = 0
    got = build(revised, out)
    assert calls[0] > 0
    assert got.equals(build(revised, tmp_path / "fresh_revised"))
    for path in (out / ".cache").rglob("*.json"):
        path.write_text("{")
    calls[0] = 0
    assert build(grown, out).equals(kept)
    assert calls[0] > 0
