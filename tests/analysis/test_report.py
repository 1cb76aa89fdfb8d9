"""The report: a page that works offline (Vega's JavaScript inlined, no fetch), whose map
zooms, tells on hover and finds an id, a sortable table, an entity's history with the
episodes shaded, the library by shock type; and a PNG of the map with real text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions, read_table

runner = CliRunner()


def _specs(page: str) -> list[dict]:  # type: ignore[type-arg]
    """The chart specs a page embeds."""
    return [
        json.loads(m.replace("<\\/", "</"))
        for m in re.findall(r'vegaEmbed\("#chart\d+", (\{.*?\}), \{"actions": false\}\);', page)
    ]


def test_the_report_works_offline_and_explains_itself(built: Path, tmp_path: Path) -> None:
    pytest.importorskip("vl_convert", reason="the charts need the [plot] extra")
    day = partitions(built)[-1]
    target = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(target)])
    assert res.exit_code == 0, res.stderr
    page = target.read_text()
    assert "<script src" not in page and "vegaEmbed" in page  # everything inlined
    specs = _specs(page)
    assert len(specs) == 3  # the map, the history, the library
    joint = specs[0]
    layers = joint["layer"]
    assert re.match(r"PC1 \(\d+% of variance\)", layers[0]["encoding"]["x"]["title"])
    assert layers[0]["params"][0]["bind"] == "scales"  # zoom and pan
    assert {t["field"] for t in layers[0]["encoding"]["tooltip"]} >= {"name", "fragility_text"}
    assert joint["params"][0]["bind"]["input"] == "search"  # the search box
    named = {r["name"] for r in joint["data"]["values"] if r.get("severity") == "HIGH"}
    high = read_table(built, "scenarios", day).filter(pl.col("severity") == "HIGH")
    assert named == set(high["scenario_id"])  # every HIGH scenario labelled on the map
    assert '<table class="sortable">' in page and "SORTABLE" not in page
    assert f"the most fragile entity on {day}" in page
    assert "Built with joint-stab-fragility-v4; each state&#x27;s market context is" in page
    assert "no factor series were declared" in page
    history = specs[1]
    assert history["layer"][-1]["data"]["values"][0]["label"] == f"as of {day}"
    assert specs[2]["layer"][0]["encoding"]["color"]["field"] == "shock_type"
    png = target.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_the_top_table_shows_what_drives_each_fragility(built: Path, tmp_path: Path) -> None:
    # On a calm date the most fragile states' fragility agrees to four decimals (the risk
    # angle saturates): the table gives the volatility and drawdown that order them.
    day = partitions(built)[-1]
    target = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(target)])
    assert res.exit_code == 0, res.stderr
    table = re.search(r'<table class="sortable">(.*?)</table>', target.read_text()).group(1)
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head[:2] == ["entity_id", "fragility"] and {"vol_21", "vol_252", "dd_252"} <= set(head)
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    feats = read_table(built, "features", day)
    for row in rows[:3]:
        mine = feats.filter(pl.col("entity_id") == row[0]).row(0, named=True)
        for column in ("vol_21", "vol_252", "dd_252"):
            assert row[head.index(column)] == f"{mine[column]:.3f}", (row, column)


def test_without_the_extra_the_page_is_still_readable(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vl_convert", None)  # as if the extra were not installed
    target = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(target)])
    assert res.exit_code == 0, res.stderr
    page = target.read_text()
    assert "Chart not drawn: pip install" in page and "<table" in page
    assert not target.with_suffix(".png").exists()


def test_an_entity_history_marks_the_as_of_date(built: Path, tmp_path: Path) -> None:
    pytest.importorskip("vl_convert", reason="the charts need the [plot] extra")
    day = partitions(built)[0]
    rows = read_table(built, "joint_embeddings", day).filter(pl.col("kind") == "entity")
    entity = str(rows["entity_id"][0])
    target = tmp_path / "e.html"
    res = runner.invoke(
        app,
        ["report", "--out", str(built), "--as-of", str(day), "--entity", entity]
        + ["--html", str(target)],
    )
    assert res.exit_code == 0, res.stderr
    page = target.read_text()
    assert f"{entity} over time" in page and "asked for with --entity" in page
    assert f"as of {day}" in page and "nearest scenario" in page


def test_report_out_names_the_build_folder(built: Path, tmp_path: Path) -> None:
    """--out is the build folder, as in every command; the page has its own flag."""
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "--html" in res.stderr


def test_the_page_says_which_factors_name_the_shock_type() -> None:
    from stabfrag.analysis.report import built_with

    text = built_with(
        {"model": "joint-stab-fragility-v4", "market": "SPY", "factors": {"rates": "TLT"}}
    )
    assert text == (
        "Built with joint-stab-fragility-v4; each state's market context is the market "
        "entity SPY; shock types are named from the factors rates TLT."
    )
    gaps = built_with(
        {"model": "joint-stab-fragility-v4", "factors": {"rates": "TLT", "fx": "UUP"}},
        missing=("fx",),
    )
    assert gaps.endswith(
        "The fx factor UUP had no state on this date: its part of the context reads calm."
    )
