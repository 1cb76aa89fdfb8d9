"""`stabfrag profiles build` end to end: the file --profiles reads, rejects that reconcile,
the same bytes twice, text vectors and their one-line errors, and a build that uses it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.ingest.profiles import read_profiles
from stabfrag.schema import DIM
from stabfrag.sinks.dataset import read_table
from stabfrag.synth import generate, write_market

runner = CliRunner()
START, END = "2023-06-01", "2024-12-31"


@pytest.fixture(scope="module")
def structural_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("structural")
    write_market(generate(80, 900, seed=3, structural=True), out)
    return out


def _build(folder: Path, out: Path, *extra: str) -> dict[str, object]:
    res = runner.invoke(
        app,
        [
            "profiles", "build", "--prices", str(folder / "prices.parquet"),
            "--start", START, "--end", END, "--out", str(out), "--json", *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary: dict[str, object] = json.loads(res.stdout)
    return summary


def test_profiles_build_writes_what_profiles_reads(structural_dir: Path, tmp_path: Path) -> None:
    fundamentals = structural_dir / "fundamentals.parquet"
    # Four bad rows beside the good ones: each must come back as a reject with its reason.
    bad = tmp_path / "fundamentals.parquet"
    good = pl.read_parquet(fundamentals)
    pl.concat(
        [
            good.with_columns(pl.col("value").cast(pl.String)),
            pl.DataFrame(
                {
                    "entity_id": [good["entity_id"][0]] * 3 + ["NOT.LISTED"],
                    "date": [
                        good["date"][0],
                        good["date"][0],
                        dt.date(2030, 1, 1),
                        good["date"][0],
                    ],
                    "field": ["governance", "leverage", "leverage", "leverage"],
                    "value": ["1", "high", "2", "2"],
                },
                schema={
                    "entity_id": pl.String,
                    "date": pl.Date,
                    "field": pl.String,
                    "value": pl.String,
                },
            ),
        ]
    ).write_parquet(bad)
    out = tmp_path / "p"
    summary = _build(structural_dir, out, "--fundamentals", str(bad))
    profiles = read_profiles(out / "profiles.parquet")
    assert profiles.height == summary["profiles"] > 0
    raw = pl.read_parquet(out / "profiles.parquet")
    assert raw["source"].str.starts_with("behaviour").all()
    assert summary["with_fundamentals"] == raw["source"].str.contains("fundamentals").sum() > 0
    fund = summary["fundamentals"]
    assert isinstance(fund, dict)
    assert fund["values_rejected"] == {
        "future_date": 1,
        "non_numeric_value": 1,
        "unknown_entity": 1,
        "unknown_field": 1,
    }
    assert fund["values_in"] == fund["values_used"] + 4 == good.height + 4
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert set(rejects.filter(pl.col("scope") == "fundamentals_row")["reason"]) == {
        "future_date",
        "unknown_entity",
        "non_numeric_value",
        "unknown_field",
    }
    inputs = pl.read_parquet(out / "inputs.parquet")
    assert inputs.height == profiles.height + int(summary["without_signal"])  # type: ignore[call-overload]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["model"] == "joint-profile-core-v1" and manifest["inputs"]["fundamentals"]


def test_the_same_input_gives_the_same_bytes(structural_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _build(structural_dir, a)
    _build(structural_dir, b)
    for name in ("profiles.parquet", "inputs.parquet", "rejects.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_text_vectors_join_and_bad_ones_are_one_line(structural_dir: Path, tmp_path: Path) -> None:
    ids = pl.read_parquet(structural_dir / "entities.parquet")["entity_id"].head(10)
    rng = np.random.default_rng(0)
    text = tmp_path / "text.parquet"
    frame = pl.DataFrame(
        {
            "entity_id": ids,
            "as_of_date": [pl.Series([START]).str.to_date()[0]] * 10,
            "vector": rng.standard_normal((10, DIM)).astype(np.float32),
        }
    )
    frame.write_parquet(text)
    summary = _build(structural_dir, tmp_path / "t", "--text-vectors", str(text))
    assert int(summary["with_text"]) > 0  # type: ignore[call-overload]
    short = tmp_path / "short.parquet"
    frame.with_columns(pl.col("vector").cast(pl.List(pl.Float32)).list.head(100)).write_parquet(
        short
    )
    nan = tmp_path / "nan.parquet"
    values = rng.standard_normal((10, DIM)).astype(np.float32)
    values[3, 7] = np.nan
    frame.with_columns(pl.Series("vector", values)).write_parquet(nan)
    for path, words in ((short, "384 values"), (nan, "NaN")):
        res = runner.invoke(
            app,
            [
                "profiles", "build", "--prices", str(structural_dir / "prices.parquet"),
                "--as-of", END, "--out", str(tmp_path / "x"), "--text-vectors", str(path),
            ],
        )  # fmt: skip
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "text" in lines[0], res.stderr


def test_a_build_with_these_profiles_says_so(structural_dir: Path, tmp_path: Path) -> None:
    _build(structural_dir, tmp_path / "p")
    out = tmp_path / "built"
    res = runner.invoke(
        app,
        [
            "build", "--as-of", END, "--prices", str(structural_dir / "prices.parquet"),
            "--profiles", str(tmp_path / "p" / "profiles.parquet"), "--out", str(out),
            "--weights", "prof=0.25",  # the default model gives the branch none
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = read_table(out, "joint_embeddings", pl.Series([END]).str.to_date()[0])
    sources = rows.filter(pl.col("kind") == "entity")["entity_scope"].str.json_path_match(
        "$.source"
    )
    assert (sources == "stab+scenarios+profile").sum() > 0
    assert (sources == "stab+scenarios").sum() > 0  # the young ones have no profile yet


def test_options_that_cannot_work_are_one_line(structural_dir: Path, tmp_path: Path) -> None:
    prices = str(structural_dir / "prices.parquet")
    cases = [
        (["--out", str(tmp_path)], "--as-of"),
        (["--as-of", END, "--start", START, "--out", str(tmp_path)], "--as-of"),
        (["--as-of", END, "--market", "NOPE", "--out", str(tmp_path)], "NOPE"),
        (["--start", END, "--end", START, "--out", str(tmp_path)], "before"),
    ]
    for args, words in cases:
        res = runner.invoke(app, ["profiles", "build", "--prices", prices, *args])
        assert res.exit_code == 2, (args, res.output)
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_profiles_of_another_basis_are_refused_by_a_build(
    structural_dir: Path, tmp_path: Path
) -> None:
    """Profiles made for the default model's stab encoder (v3's) are meaningless beside v2's
    states: one line."""
    _build(structural_dir, tmp_path / "p")
    res = runner.invoke(
        app,
        [
            "build", "--as-of", END, "--prices", str(structural_dir / "prices.parquet"),
            "--profiles", str(tmp_path / "p" / "profiles.parquet"), "--out", str(tmp_path / "b"),
            "--model", "joint-stab-fragility-v2",
        ],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "basis of num-stab-core-v3" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_the_fundamentals_staleness_limit_is_the_users(
    structural_dir: Path, tmp_path: Path
) -> None:
    fundamentals = str(structural_dir / "fundamentals.parquet")
    loose = _build(structural_dir, tmp_path / "a", "--fundamentals", fundamentals)
    tight = _build(
        structural_dir,
        tmp_path / "b",
        "--fundamentals",
        fundamentals,
        "--fundamentals-staleness-days",
        "20",
    )
    assert 0 < int(tight["with_fundamentals"]) < int(loose["with_fundamentals"])  # type: ignore[call-overload]


def test_bad_prices_rows_are_rejects_that_reconcile(structural_dir: Path, tmp_path: Path) -> None:
    from stabfrag.synth import inject_defects

    folder = tmp_path / "defects"
    folder.mkdir()
    prices = pl.read_parquet(structural_dir / "prices.parquet")
    inject_defects(prices, seed=3).write_parquet(folder / "prices.parquet")
    summary = _build(folder, tmp_path / "p")
    counts = summary["prices"]
    assert isinstance(counts, dict)
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_rejected"]
    assert counts["rows_rejected"] >= 8 and "bad_entity_id" in counts["rejects_by_reason"]
    rejects = pl.read_parquet(tmp_path / "p" / "rejects.parquet")
    assert rejects.filter(pl.col("scope") == "prices_row").height == counts["rows_rejected"]
