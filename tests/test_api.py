"""The public API: the README's example as written, and the façade's promises."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

import stabfrag

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## From Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's From Python section has no python block"
    return match.group(1)


def test_the_readme_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "month-ends" in printed and "fragility" in printed
    top = namespace["top"]
    assert isinstance(top, pl.DataFrame) and top.height == 10
    assert top["fragility"].is_sorted(descending=True)
    vectors = namespace["vectors"]
    assert isinstance(vectors, pl.DataFrame)
    assert vectors.schema["vector"] == pl.Array(pl.Float32, 384)
    history = namespace["ds"].history(namespace["worst"])  # type: ignore[attr-defined]
    built = namespace["summary"].as_of_dates  # type: ignore[attr-defined]
    assert set(history["as_of_date"]) <= set(built) and history["as_of_date"][-1] == built[-1]


def test_the_package_exports_its_api() -> None:
    assert {"build", "backfill", "open", "Dataset", "RunSummary"} <= set(stabfrag.__all__)
    for name in stabfrag.__all__:
        assert getattr(stabfrag, name) is not None
    assert (Path(stabfrag.__file__).parent / "py.typed").exists()
    with pytest.raises(AttributeError):
        stabfrag.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_a_frame_builds_as_its_file_does(market_dir: Path, tmp_path: Path) -> None:
    prices = market_dir / "prices.parquet"
    last = pl.read_parquet(prices)["date"].max()
    assert isinstance(last, dt.date)
    from_file = stabfrag.build(prices, as_of=last, out=tmp_path / "file")
    frame = pl.read_parquet(prices)
    from_frame = stabfrag.build(frame, as_of=last.isoformat(), out=tmp_path / "frame")
    assert from_frame.states_out == from_file.states_out > 0
    a, b = (
        stabfrag.open(tmp_path / name).vectors().select("entity_id", "vector")
        for name in ("file", "frame")
    )
    assert a.equals(b)
    with pytest.raises(TypeError, match="unknown option"):
        stabfrag.build(prices, as_of=last, out=tmp_path / "x", colour="red")
    with pytest.raises(stabfrag.StabfragError, match="is not a date"):
        stabfrag.build(prices, as_of="last friday", out=tmp_path / "x")


def test_a_build_opens_from_any_working_directory(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ds = stabfrag.open(os.path.relpath(built, elsewhere))
    assert ds.fragile(top_n=3).height == 3
    n = ds.sql(
        "SELECT count(*) AS n FROM joint_embeddings WHERE as_of_date = getvariable('d')",
        d=ds.dates()[-1],
    )["n"][0]
    assert n > 0
    # A plain DuckDB client connecting from elsewhere sets the folder as its search path.
    con = duckdb.connect(str(built / "stabfrag.duckdb"), read_only=True)
    con.execute(f"SET file_search_path = '{built}'")
    assert con.execute("SELECT count(*) FROM joint_embeddings").fetchone()[0] > 0  # type: ignore[index]
    con.close()
    with pytest.raises(stabfrag.StabfragError, match="exactly one of entity or scenario"):
        ds.nearest()
    with pytest.raises(stabfrag.StabfragError, match="nothing built"):
        stabfrag.open(tmp_path / "empty")


def test_a_researchers_arguments_are_checked_as_the_command_line_checks_them(
    built: Path, market_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    ds = stabfrag.open(built)
    last = ds.dates()[-1]
    # A date as a numpy datetime64 (what a frame's .to_numpy() gives) is a date.
    np_day = np.datetime64(last.isoformat())
    assert ds.fragile(as_of=np_day, top_n=3).equals(ds.fragile(as_of=last, top_n=3))
    # Anything else is one clear error, never an internal TypeError or AttributeError.
    for bad in (20240101, 3.5, ["2024-12-31"]):
        with pytest.raises(stabfrag.StabfragError, match="as_of .* is not a date"):
            ds.fragile(as_of=bad)  # type: ignore[arg-type]
    prices = market_dir / "prices.parquet"
    for option, bad in (
        ("factors", 5),
        ("weights", 5),
        ("weights", {"stab": -1.0}),
        ("weights", {"bogus": 1.0}),
        ("market", 5),
    ):
        with pytest.raises(stabfrag.StabfragError, match=option):
            stabfrag.build(prices, as_of=last, out=tmp_path / "x", **{option: bad})
    with pytest.raises(stabfrag.StabfragError, match="prices: give a path"):
        stabfrag.build(5, as_of=last, out=tmp_path / "x")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()  # refused before anything is written
    # Counts as the command line takes them: at least 1, a gap of at least 0 days.
    for call in (
        lambda: ds.fragile(top_n=0),
        lambda: ds.fragile(top_n=-1),
        lambda: ds.nearest(entity=str(ds.fragile(top_n=1)["entity_id"][0]), top_n=0),
        lambda: ds.fragile(top_n="ten"),  # type: ignore[arg-type]
    ):
        with pytest.raises(stabfrag.StabfragError, match="top_n must be a whole number >= 1"):
            call()
    entity = str(ds.fragile(top_n=1)["entity_id"][0])
    with pytest.raises(stabfrag.StabfragError, match="min_gap_days must be a whole number >= 0"):
        ds.analogs(entity, min_gap_days=-5)


def test_a_report_shows_its_charts_in_a_notebook(built: Path, tmp_path: Path) -> None:
    vl_convert = pytest.importorskip("vl_convert", reason="the charts need the [plot] extra")
    report = stabfrag.open(built).report(tmp_path / "r.html")
    spec = report._repr_mimebundle_()["application/vnd.vegalite.v5+json"]
    assert len(spec["vconcat"]) == 3 and report.path.read_text().startswith("<!doctype html>")
    assert "<svg" in vl_convert.vegalite_to_svg(spec)  # what a notebook draws is valid
