from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.errors import ScenarioError
from stabfrag.scenarios.library import SEVERITIES, SHOCK_TYPES, load_library
from stabfrag.scenarios.paths import Baseline, synthesise_path
from stabfrag.sinks.dataset import read_table
from stabfrag.synth import generate

runner = CliRunner()


def test_library_covers_every_type_and_severity() -> None:
    lib = load_library()
    assert len(lib) >= 16
    shocks = {s.shock_type for s in lib if s.shock_type != "BASELINE"}
    assert shocks == set(SHOCK_TYPES) - {"BASELINE"}
    for shock in shocks:
        assert {s.severity for s in lib if s.shock_type == shock} >= {"LOW", "MEDIUM", "HIGH"}
    assert sum(s.shock_type == "BASELINE" and s.severity == "NONE" for s in lib) >= 2
    assert {"synthetic", "historical"} == {s.kind for s in lib}
    assert {s.severity for s in lib} <= set(SEVERITIES)


def test_paths_are_deterministic_and_show_their_move() -> None:
    lib = {s.id: s for s in load_library()}
    sc = lib["SCN_EQ_CRASH_HIGH"]
    a = synthesise_path(sc, Baseline())
    assert a.equals(synthesise_path(sc, Baseline()))
    close = a["close"].to_numpy()
    move = close[-1] / close[-1 - sc.horizon_days] - 1
    assert move == pytest.approx(sc.price_shock, abs=0.02)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            'id = "X"\nkind = "synthetic"\nshock_type = "NOPE"\nseverity = "LOW"\n'
            'description = "d"',
            "shock_type",
        ),
        (
            'id = "X"\nkind = "synthetic"\nshock_type = "VOL_SPIKE"\nseverity = "LOW"\n'
            'description = "d"\nhorizon_days = 10\nprice_shock = "a lot"\nvol_multiplier = 2\n'
            "volume_multiplier = 1",
            "price_shock",
        ),
        (
            'id = "X"\nkind = "historical"\nshock_type = "VOL_SPIKE"\nseverity = "LOW"\n'
            'description = "d"\nhorizon_days = 10\nprice_shock = -0.1\nvol_multiplier = 2\n'
            "volume_multiplier = 1",
            "episode_start",
        ),
        (
            'id = "X"\nkind = "synthetic"\nshock_type = "VOL_SPIKE"\nseverity = "LOW"\n'
            'description = "d"\nhorizon_days = 10\nprice_shock = -0.1\nvol_multiplier = 2\n'
            'volume_multiplier = 1\ncolour = "red"',
            "colour",
        ),
    ],
)
def test_malformed_scenario_names_file_id_and_field(tmp_path: Path, body: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[scenario]]\n" + body + "\n")
    with pytest.raises(ScenarioError) as err:
        load_library(tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "scenario X" in msg and f"field {field}" in msg
    assert "\n" not in msg
    res = runner.invoke(app, ["scenarios", "list", "--scenarios", str(tmp_path)])
    assert res.exit_code == 2 and f"field {field}" in res.stderr


def test_scenarios_list_and_show() -> None:
    res = runner.invoke(app, ["scenarios", "list", "--format", "csv"])
    assert res.exit_code == 0 and "SCN_GFC_2008" in res.stdout
    res = runner.invoke(app, ["scenarios", "show", "SCN_GFC_2008"])
    assert res.exit_code == 0 and "price_shock" in res.stdout
    res = runner.invoke(app, ["scenarios", "show", "SCN_NOPE"])
    assert res.exit_code == 2 and "SCN_NOPE" in res.stderr


def _with_spy(tmp_path: Path) -> Path:
    """A market whose first entity is renamed SPY and spans the 2008 crisis."""
    m = generate(entities=20, days=1600, seed=2)
    prices = m.prices.with_columns(
        pl.col("date") - pl.duration(days=(dt.date(2024, 12, 31) - dt.date(2010, 12, 31)).days)
    )
    first = prices["entity_id"][0]
    prices = prices.with_columns(
        pl.when(pl.col("entity_id") == first)
        .then(pl.lit("SPY"))
        .otherwise(pl.col("entity_id"))
        .alias("entity_id")
    )
    path = tmp_path / "prices.parquet"
    prices.write_parquet(path)
    return path


def test_historical_scenario_uses_reference_path_once_it_has_ended(tmp_path: Path) -> None:
    """A historical scenario exists from its episode's end, on its real reference path;
    before that it is not in the build at all, and later episodes never are."""
    path = _with_spy(tmp_path)
    out = tmp_path / "o"
    before, after = dt.date(2009, 3, 2), dt.date(2010, 12, 31)
    loop.run(BuildConfig(prices=path, out=out), [before, after])
    src = {
        d: dict(read_table(out, "scenarios", d).select("scenario_id", "path_source").iter_rows())
        for d in (before, after)
    }
    assert src[after]["SCN_GFC_2008"] == "reference:SPY"
    assert "SCN_GFC_2008" not in src[before]  # the episode had not ended: not yet known
    for later in ("SCN_COVID_CRASH_2020", "SCN_VOLMAGEDDON_2018", "SCN_US_DOWNGRADE_2011"):
        assert later not in src[before] and later not in src[after]
    assert "SCN_FLASH_CRASH_2010" in src[after]
    for d in (before, after):
        named = read_table(out, "joint_embeddings", d)["nearest_scenario_id"].drop_nulls()
        assert set(named) <= set(src[d])


def test_known_from_brings_a_scenario_in_before_its_end(tmp_path: Path) -> None:
    """`known_from` adds an episode from that date, on its synthetic path until it ends."""
    import shutil

    from stabfrag.config import packaged

    library = tmp_path / "lib"
    shutil.copytree(packaged("scenario_library"), library)
    hist = library / "historical.toml"
    hist.write_text(
        hist.read_text().replace(
            "episode_end = 2009-03-09", "episode_end = 2009-03-09\nknown_from = 2008-10-15", 1
        )
    )
    path = _with_spy(tmp_path)
    out = tmp_path / "o"
    before, after = dt.date(2009, 3, 2), dt.date(2010, 12, 31)
    loop.run(BuildConfig(prices=path, out=out, scenarios=library), [before, after])
    src = {
        d: dict(read_table(out, "scenarios", d).select("scenario_id", "path_source").iter_rows())
        for d in (before, after)
    }
    assert src[before]["SCN_GFC_2008"] == "synthetic"  # known, but its path not yet seen
    assert src[after]["SCN_GFC_2008"] == "reference:SPY"
