"""The report explains itself: axes, colour bar, legend, HIGH scenarios named, a dated
history with the as-of date marked, and a PNG that carries its title and legend."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from stabfrag.analysis import canvas
from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions, read_table

runner = CliRunner()


def _png_pixels(path: Path) -> np.ndarray:
    """Decode the report's own PNG (8-bit RGB, filter 0 on every row)."""
    data = path.read_bytes()
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 3)
    return raw[:, 1:].reshape(h, w, 3)


def test_the_font_draws_known_glyphs_and_marks_unknown_ones() -> None:
    one = canvas.text_mask("1")
    assert one.shape == (7, 6) and one[:, 2].all() and not one[:, 5].any()
    assert (canvas.text_mask("é") == canvas.text_mask("?")).all()
    assert (canvas.text_mask("ab") == canvas.text_mask("AB")).all()
    assert canvas.text_mask("X", scale=2).shape == (14, 12)


def test_the_report_explains_itself(built: Path, tmp_path: Path) -> None:
    day = partitions(built)[-1]
    target = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(target)])
    assert res.exit_code == 0, res.stderr
    page = target.read_text()
    assert re.search(r"PC1 \(\d+% of variance\)", page) and "PC2 (" in page
    assert "fragility" in page and "most fragile)" in page  # the colour bar
    assert "entity state" in page and "scenario" in page  # the legend
    high = read_table(built, "scenarios", day).filter(pl.col("severity") == "HIGH")
    for sid in high["scenario_id"]:
        assert re.search(rf">{sid}</text>", page), sid  # named on the map, not only on hover
    # No --entity: the most fragile entity's history, said so, with dated ticks and the date.
    assert f"the most fragile entity on {day}" in page
    assert f"as of {day}" in page
    assert re.search(r">\d{4}-\d{2}</text>", page)
    png = _png_pixels(target.with_suffix(".png"))
    ink = (png < 128).all(axis=2)
    assert ink[:40].sum() > 500  # the title
    assert ink[:, 880:].sum() > 500  # colour bar labels and legend
    assert ink[585:].sum() > 300  # tick labels and the PC1 title


def test_an_entity_history_marks_the_as_of_date(built: Path, tmp_path: Path) -> None:
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
