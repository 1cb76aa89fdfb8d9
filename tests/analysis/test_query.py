"""The DuckDB queries against a numpy brute force on the same vectors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.analysis.query import run_sql, sql_dir
from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions, read_table

runner = CliRunner()


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _split(built: Path, d: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    j = read_table(built, "joint_embeddings", d)
    return j.filter(pl.col("kind") == "entity"), j.filter(pl.col("kind") == "scenario")


def test_fragile_equals_brute_force(built: Path) -> None:
    d = partitions(built)[-1]
    ent, scen = _split(built, d)
    high = (read_table(built, "scenarios", d)["severity"] == "HIGH").to_numpy()
    sims = _unit(ent["vector"].to_numpy()) @ _unit(scen["vector"].to_numpy()).T
    want = sims[:, high].max(axis=1)
    order = np.lexsort((ent["entity_id"].to_numpy(), -want))[:15]
    got = run_sql(built, "fragile", {"as_of": d, "top_n": 15})
    assert got["entity_id"].to_list() == ent["entity_id"].to_numpy()[order].tolist()
    np.testing.assert_allclose(got["fragility"].to_numpy(), want[order], atol=1e-5)
    np.testing.assert_allclose(
        got["fragility"].to_numpy(), ent["fragility"].to_numpy()[order], atol=1e-5
    )


def test_nearest_both_ways_equal_brute_force(built: Path) -> None:
    d = partitions(built)[-1]
    ent, scen = _split(built, d)
    sims = _unit(ent["vector"].to_numpy()) @ _unit(scen["vector"].to_numpy()).T
    eid = ent["entity_id"][3]
    got = run_sql(built, "nearest_scenarios", {"entity_id": eid, "as_of": d, "top_n": 5})
    want = np.argsort(-sims[3], kind="stable")[:5]
    assert got["scenario_id"].to_list() == scen["scenario_id"].to_numpy()[want].tolist()
    np.testing.assert_allclose(got["similarity"].to_numpy(), sims[3, want], atol=1e-5)
    sid = scen["scenario_id"][0]
    got = run_sql(built, "nearest_entities", {"scenario_id": sid, "as_of": d, "top_n": 7})
    want = np.argsort(-sims[:, 0], kind="stable")[:7]
    assert got["entity_id"].to_list() == ent["entity_id"].to_numpy()[want].tolist()


def test_analogs_respect_the_gap_and_match_brute_force(built: Path) -> None:
    dates = partitions(built)
    last = dates[-1]
    frames = {d: _split(built, d)[0] for d in dates}
    eid = next(
        e
        for e in frames[last]["entity_id"]
        if all(e in frames[d]["entity_id"].to_list() for d in dates)
    )
    for gap in (0, 120, 400):
        got = run_sql(
            built, "analogs", {"entity_id": eid, "as_of": last, "top_n": 5, "min_gap_days": gap}
        )
        target = _unit(frames[last].filter(pl.col("entity_id") == eid)["vector"].to_numpy())[0]
        cands = [d for d in dates if d < last and (last - d).days >= gap]
        sims = {
            d: float(
                _unit(frames[d].filter(pl.col("entity_id") == eid)["vector"].to_numpy())[0] @ target
            )
            for d in cands
        }
        want = sorted(cands, key=lambda d: (-sims[d], d))[:5]
        assert got["as_of_date"].to_list() == want
        assert last not in got["as_of_date"].to_list()
        assert all((last - d).days >= gap for d in got["as_of_date"].to_list())


def test_trajectory(built: Path) -> None:
    dates = partitions(built)
    eid = _split(built, dates[-1])[0]["entity_id"][0]
    got = run_sql(built, "trajectory", {"entity_id": eid, "scenario_id": "SCN_GFC_2008"})
    assert got["as_of_date"].to_list() == sorted(got["as_of_date"].to_list())
    for d, sim in got.select("as_of_date", "similarity").iter_rows():
        ent, scen = _split(built, d)
        e = _unit(ent.filter(pl.col("entity_id") == eid)["vector"].to_numpy())[0]
        s = _unit(scen.filter(pl.col("scenario_id") == "SCN_GFC_2008")["vector"].to_numpy())[0]
        assert abs(sim - float(e @ s)) < 1e-5


@pytest.mark.parametrize("path", sorted(sql_dir().glob("*.sql")), ids=lambda p: p.name)
def test_every_sql_file_runs_in_a_bare_connection(built: Path, path: Path) -> None:
    d = partitions(built)[-1]
    ent = _split(built, d)[0]["entity_id"][0]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{built}'")  # as README says: views are relative
    con.execute(f"ATTACH '{built / 'stabfrag.duckdb'}' AS sf (READ_ONLY)")
    con.execute("USE sf")
    params = {
        "as_of": d,
        "top_n": 5,
        "entity_id": ent,
        "scenario_id": "SCN_GFC_2008",
        "min_gap_days": 30,
    }
    for k, v in params.items():
        con.execute(f"SET VARIABLE {k} = ?", [v]).fetchall()
    rows = con.sql(path.read_text()).fetchall()
    assert rows, path.name
    # Every parameter the file reads is documented at its top.
    header = "".join(line for line in path.read_text().splitlines() if line.startswith("--"))
    for name in params:
        if f"getvariable('{name}')" in path.read_text():
            assert f"SET VARIABLE {name}" in header, (path.name, name)


def test_query_cli_formats_and_bad_input(built: Path) -> None:
    d = partitions(built)[-1]
    res = runner.invoke(
        app, ["query", "fragile", "--out", str(built), "--format", "json", "--top", "3"]
    )
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)) == 3
    res = runner.invoke(app, ["query", "fragile", "--out", str(built), "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.startswith("entity_id,fragility")
    ent = _split(built, d)[0]["entity_id"][0]
    res = runner.invoke(app, ["query", "nearest", "--out", str(built), "--entity", ent[:-1] + "X"])
    assert res.exit_code == 2 and "close entity ids" in res.stderr and ent in res.stderr
    res = runner.invoke(app, ["query", "fragile", "--out", str(built), "--as-of", "1999-01-01"])
    assert res.exit_code == 2 and "nearest as-of dates" in res.stderr
    assert str(partitions(built)[0]) in res.stderr
    res = runner.invoke(
        app,
        [
            "query",
            "analogs",
            "--out",
            str(built),
            "--entity",
            ent,
            "--min-gap-days",
            "30",
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.stderr
