"""The analog index against exact search: recall, the point-in-time filter, k results,
staleness, and `index update` equal to a full build."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions

faiss = pytest.importorskip("faiss", reason="the analog index needs the [index] extra")

from stabfrag import api  # noqa: E402
from stabfrag.index import store  # noqa: E402
from stabfrag.index.build import build_index  # noqa: E402
from stabfrag.index.search import (  # noqa: E402
    AnalogIndex,
    exact_search,
    find_analogs,
    state_vector,
)

pytestmark = pytest.mark.index
runner = CliRunner()
KEYS = ["as_of_date", "entity_id"]


def _backfill(prices: Path, out: Path, start: str, end: str) -> dict[str, Any]:
    args = ["backfill", "--prices", str(prices), "--out", str(out), "--freq", "week", "--json"]
    res = runner.invoke(app, [*args, "--start", start, "--end", end])
    assert res.exit_code == 0, res.stderr
    return dict(json.loads(res.stdout))


@pytest.fixture(scope="module")
def history(market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weekly history of the 150-entity market (about 120 dates, 17,000 states)."""
    out = tmp_path_factory.mktemp("history") / "out"
    _backfill(market_dir / "prices.parquet", out, "2022-09-01", "2024-12-31")
    return out


@pytest.fixture(scope="module")
def indexed(history: Path) -> AnalogIndex:
    build_index(history, update=False)
    index = AnalogIndex.open(history)
    assert index is not None and index.valid_before is None
    return index


def _queries(index: AnalogIndex, n: int, seed: int) -> list[dict[str, object]]:
    rows = np.random.default_rng(seed).choice(len(index.keys), size=n, replace=False)
    return [index.keys.row(int(i), named=True) for i in rows]


def _pairs(frame: pl.DataFrame) -> list[tuple[dt.date, str]]:
    return list(zip(frame["as_of_date"], frame["entity_id"], strict=True))


@pytest.fixture
def narrow(indexed: AnalogIndex) -> Iterator[AnalogIndex]:
    """The index searching 32 of its lists first (the default searches every list of an
    index this small): the approximate path, and its widening, are what is tested."""
    params = indexed.manifest["params"]
    saved = params["nprobe"]
    params["nprobe"] = 32
    assert params["lists"] >= 64
    yield indexed
    params["nprobe"] = saved


def test_recall_against_exact_search(history: Path, narrow: AnalogIndex) -> None:
    indexed = narrow
    recalls = []
    for row in _queries(indexed, 25, seed=1):
        day, entity = row["as_of_date"], str(row["entity_id"])
        args = {"as_of": day, "entity": entity, "exclude": entity, "k": 10, "min_gap_days": 30}
        got = find_analogs(history, indexed, **args)  # type: ignore[arg-type]
        want = find_analogs(history, indexed, exact=True, **args)  # type: ignore[arg-type]
        assert len(got) == len(want)
        if len(want):
            recalls.append(len(set(_pairs(got)) & set(_pairs(want))) / len(want))
    assert len(recalls) >= 15 and np.mean(recalls) >= 0.95


def test_every_list_searched_is_exact_search(history: Path, indexed: AnalogIndex) -> None:
    params = indexed.manifest["params"]
    saved = params["nprobe"]
    params["nprobe"] = params["lists"]
    try:
        for row in _queries(indexed, 10, seed=2):
            day = row["as_of_date"]
            vector = indexed.vector_of(str(row["entity_id"]), day)  # type: ignore[arg-type]
            assert vector is not None
            last = day - dt.timedelta(days=1)  # type: ignore[operator]
            got = indexed.search(vector, last, None, 8)
            want = exact_search(history, vector, last, None, 8)
            assert _pairs(got) == _pairs(want)
            np.testing.assert_allclose(got["similarity"], want["similarity"], atol=1e-6)
            assert got.drop("similarity").equals(want.drop("similarity"))
    finally:
        params["nprobe"] = saved


@pytest.mark.parametrize("gap", [0, 7, 90, 400])
def test_no_state_known_after_the_date(history: Path, indexed: AnalogIndex, gap: int) -> None:
    for row in _queries(indexed, 20, seed=gap):
        day, entity = row["as_of_date"], str(row["entity_id"])
        got = find_analogs(
            history, indexed, as_of=day, entity=entity, exclude=entity, k=15, min_gap_days=gap
        )  # type: ignore[arg-type]
        newest = day - dt.timedelta(days=max(gap, 1))  # type: ignore[operator]
        assert all(d <= newest for d in got["as_of_date"])
        assert entity not in got["entity_id"].to_list()


def test_k_results_whenever_k_states_are_eligible(narrow: AnalogIndex) -> None:
    indexed = narrow
    days = sorted(set(indexed.keys["as_of_date"]))
    vector = indexed.vector_of(str(indexed.keys["entity_id"][-1]), days[-1])
    assert vector is not None
    for last in (days[0], days[1], days[len(days) // 2]):
        eligible = indexed.keys.filter(pl.col("as_of_date") <= last)
        others = eligible.filter(pl.col("entity_id") != "E00003.US")
        for k in (5, 40, len(others) + 10):
            got = indexed.search(vector, last, "E00003.US", k)
            assert len(got) == min(k, len(others))
    assert indexed.search(vector, days[0] - dt.timedelta(days=1), None, 10).is_empty()


def test_analogs_through_the_api_and_the_cli(history: Path, indexed: AnalogIndex) -> None:
    ds = api.open(history)
    day = ds.dates()[-1]
    entity = str(indexed.keys.filter(pl.col("as_of_date") == day)["entity_id"][0])
    got = ds.analogs(entity, as_of=day, among="others", top_n=7)
    want = ds.analogs(entity, as_of=day, among="others", top_n=7, exact=True)
    assert len(got) == 7 and len(set(_pairs(got)) & set(_pairs(want))) >= 6
    by_vector = ds.analogs(vector=indexed.vector_of(entity, day), as_of=day, among="all")
    assert by_vector.columns == got.columns
    res = runner.invoke(
        app,
        ["query", "analogs", "--out", str(history), "--entity", entity, "--among", "others"]
        + ["--format", "csv", "--top", "7"],
    )
    assert res.exit_code == 0, res.stderr
    assert (
        res.stdout.splitlines()[0]
        == "as_of_date,entity_id,similarity,fragility,nearest_scenario_id"
    )
    assert len(res.stdout.splitlines()) == 8


def test_a_changed_history_makes_the_index_stale(
    history: Path, indexed: AnalogIndex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(history, out)
    dates = partitions(out)
    middle = dates[len(dates) // 2]
    shutil.rmtree(out / "joint_embeddings" / f"as_of_date={middle}")  # a date removed
    index = AnalogIndex.open(out)
    assert index is not None and index.valid_before == middle
    res = runner.invoke(app, ["index", "status", "--out", str(out)])
    assert res.exit_code == 1 and "removed" in res.stdout and str(middle) in res.stdout
    entity = str(index.keys["entity_id"][-1])
    with caplog.at_level(logging.WARNING, logger="stabfrag"):
        before = dates[len(dates) // 2 - 1]
        early = find_analogs(out, index, as_of=before, entity=entity, k=5, min_gap_days=1)
        assert not caplog.records  # every eligible date precedes the change: the index serves
        late = find_analogs(out, index, as_of=dates[-1], entity=entity, k=5, min_gap_days=1)
    assert len(caplog.records) == 1 and "analog index is stale" in caplog.text
    vector = index.vector_of(entity, dates[-1])
    assert vector is None  # a stale index's vectors are not trusted for dates it may miss
    last = dates[-1] - dt.timedelta(days=1)
    want = exact_search(out, state_vector(out, entity, dates[-1]), last, None, 5)
    assert _pairs(late) == _pairs(want)
    assert len(early) == 5


def test_update_equals_a_full_build(market_dir: Path, tmp_path: Path) -> None:
    prices = market_dir / "prices.parquet"
    out = tmp_path / "grow"
    _backfill(prices, out, "2024-01-01", "2024-08-31")
    build_index(out, update=False)
    # A backfill into a folder with an index brings it up to date: later dates, then
    # earlier ones (which refile every month from theirs on).
    for start, end in (("2024-09-01", "2024-12-31"), ("2023-10-01", "2023-12-31")):
        summary = _backfill(prices, out, start, end)["analog_index"]
        assert summary["index"] == "updated" and summary["states_filed"] > 0
        assert summary["last_date"] == str(max(partitions(out)))
    assert build_index(out, update=True)["segments_written"] == 0  # nothing left to do
    updated = _files(out)
    build_index(out, update=False)  # a full build with the same training
    assert _files(out) == updated


def test_a_build_without_faiss_says_the_index_is_stale(
    market_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = market_dir / "prices.parquet"
    out = tmp_path / "stale"
    _backfill(prices, out, "2024-06-01", "2024-10-31")
    build_index(out, update=False)
    monkeypatch.setitem(sys.modules, "faiss", None)
    summary = _backfill(prices, out, "2024-11-01", "2024-12-31")
    assert "analog_index" not in summary
    (warning,) = [w for w in summary["warnings"] if "analog index" in w]
    assert "stale from 2024-11" in warning and "stabfrag index update" in warning
    monkeypatch.undo()
    res = runner.invoke(app, ["index", "status", "--out", str(out)])
    assert res.exit_code == 1  # stale until updated


def test_a_build_is_reproducible(history: Path, indexed: AnalogIndex, tmp_path: Path) -> None:
    first = _files(history)
    out = tmp_path / "again"
    shutil.copytree(history, out)
    build_index(out, update=False, retrain=True)
    assert _files(out) == first


def test_a_model_change_is_stale(history: Path, indexed: AnalogIndex, tmp_path: Path) -> None:
    out = tmp_path / "other_model"
    shutil.copytree(history, out)
    manifest = store.read_index_manifest(out)
    assert manifest is not None
    valid_before, why = store.staleness(out, {**manifest, "model": "another"}, store.built(out))
    assert valid_before == dt.date.min and "another" in why


def test_without_faiss_one_line_and_exact_search(
    history: Path, indexed: AnalogIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    res = runner.invoke(app, ["index", "build", "--out", str(history)])
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0 and "stabfrag[index]" in res.stderr
    entity = str(indexed.keys["entity_id"][-1])
    args = ["query", "analogs", "--out", str(history), "--entity", entity, "--among", "all"]
    res = runner.invoke(app, [*args, "--format", "csv", "--top", "4"])
    assert res.exit_code == 0, res.stderr
    assert "stabfrag[index]" in res.stderr and "searching exactly" in res.stderr
    assert len(res.stdout.splitlines()) == 5


def _files(out: Path) -> dict[str, bytes]:
    folder = store.index_dir(out)
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_scan_of_stored_vectors_is_exact_search(history: Path, indexed: AnalogIndex) -> None:
    for row in _queries(indexed, 6, seed=5):
        day, entity = row["as_of_date"], str(row["entity_id"])
        vector = indexed.vector_of(entity, day)  # type: ignore[arg-type]
        assert vector is not None
        last = day - dt.timedelta(days=30)  # type: ignore[operator]
        cut, own = indexed.eligible(last, entity)
        got = indexed.scan(vector, cut, own, 12)
        want = exact_search(history, vector, last, entity, 12)
        assert got.drop("similarity").equals(want.drop("similarity"))


def test_a_damaged_index_is_not_used(
    history: Path, indexed: AnalogIndex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "damaged"
    shutil.copytree(history, out)
    segment = sorted((store.index_dir(out) / store.SEGMENTS).glob("*.npy"))[-1]
    segment.write_bytes(segment.read_bytes()[:-1000])  # a torn copy
    with caplog.at_level(logging.WARNING, logger="stabfrag"):
        assert AnalogIndex.open(out) is None
    assert "analog index damaged" in caplog.text and segment.name in caplog.text
    res = runner.invoke(app, ["index", "status", "--out", str(out)])
    assert res.exit_code == 1 and "damaged" in res.stdout
    build_index(out, update=True)  # an update cannot trust the old files: it rebuilds
    assert AnalogIndex.open(out) is not None


def test_a_history_that_outgrew_its_training_is_told_to_retrain(
    market_dir: Path, tmp_path: Path
) -> None:
    prices = market_dir / "prices.parquet"
    out = tmp_path / "outgrown"
    _backfill(prices, out, "2024-10-01", "2024-10-31")
    build_index(out, update=False)
    grown = _backfill(prices, out, "2024-01-01", "2024-09-30")  # five times the states
    assert any("--retrain" in w for w in grown["warnings"]), grown["warnings"]
    res = runner.invoke(app, ["index", "status", "--out", str(out), "--json"])
    assert res.exit_code == 0 and "--retrain" in json.loads(res.stdout)["advice"]
    assert "advice" not in build_index(out, update=False, retrain=True)
    res = runner.invoke(app, ["index", "status", "--out", str(out), "--json"])
    assert "advice" not in json.loads(res.stdout)
