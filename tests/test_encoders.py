from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag import pipeline
from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.encoders import (
    STAB_MODEL_ID,
    ModelError,
    load_encoder,
    load_models,
    projection_for,
    shipped_models,
)
from stabfrag.features import FEATURE_NAMES
from stabfrag.linalg import matmul_rows
from stabfrag.schema import DIM

runner = CliRunner()


def test_shipped_models_load_and_say_what_they_were_fitted_on() -> None:
    models = load_models()
    assert models.stab.features == FEATURE_NAMES
    assert "synthetic reference panel" in models.stab.manifest["calibration"]["fitted_on"]
    assert np.array_equal(models.stab.projection, models.scen.projection)


def test_projection_has_orthonormal_rows_and_is_seeded() -> None:
    p = projection_for(STAB_MODEL_ID, len(FEATURE_NAMES))
    assert p.shape == (len(FEATURE_NAMES), DIM)
    np.testing.assert_allclose(p @ p.T, np.eye(len(FEATURE_NAMES)), atol=1e-12)
    assert np.array_equal(p, projection_for(STAB_MODEL_ID, len(FEATURE_NAMES)))


def test_changed_projection_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    shutil.copytree(shipped_models(), folder)
    proj = folder / STAB_MODEL_ID / "projection.npy"
    arr = np.load(proj)
    arr[0, 0] += 1e-9
    np.save(proj, arr)
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_encoder(folder, STAB_MODEL_ID)


def test_encode_checks_columns() -> None:
    enc = load_models().stab
    frame = pl.DataFrame({n: [0.1] for n in reversed(FEATURE_NAMES)})
    with pytest.raises(ModelError, match="feature columns"):
        enc.encode(frame)


def test_encode_row_is_independent_of_batch() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3000, len(FEATURE_NAMES)))
    p = projection_for(STAB_MODEL_ID, len(FEATURE_NAMES))
    full = matmul_rows(a, p)
    for i in (0, 1, 1500, 2999):
        assert np.array_equal(matmul_rows(a[i : i + 1], p), full[i : i + 1])


def test_calibrate_writes_artefacts_that_build_uses(market_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    res = runner.invoke(
        app,
        [
            "calibrate",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--start",
            "2022-01-01",
            "--end",
            "2023-12-31",
            "--model-dir",
            str(models),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((models / STAB_MODEL_ID / "manifest.json").read_text())
    assert manifest["calibration"]["period"] == {"start": "2022-01-01", "end": "2023-12-31"}
    shipped = load_models()
    mine = load_models(models)
    assert not np.allclose(mine.stab.center, shipped.stab.center)
    config = BuildConfig(prices=market_dir / "prices.parquet", out=tmp_path / "o", model_dir=models)
    summary = pipeline.run(config, [dt.date(2024, 12, 31)])
    assert summary.models["num-stab-core-v1"] == mine.stab.sha256
    assert summary.states_out > 0


def test_calibration_ignores_data_outside_the_range(market_dir: Path, tmp_path: Path) -> None:
    from stabfrag.calibrate import calibrate

    path = market_dir / "prices.parquet"
    prices = pl.read_parquet(path)
    changed = tmp_path / "p.parquet"
    prices.with_columns(
        pl.when(pl.col("date") > dt.date(2023, 12, 31))
        .then(pl.col("close") * 3)
        .otherwise(pl.col("close"))
    ).write_parquet(changed)
    a = calibrate(
        path, start=dt.date(2022, 1, 1), end=dt.date(2023, 12, 31), model_dir=tmp_path / "a"
    )
    b = calibrate(
        changed, start=dt.date(2022, 1, 1), end=dt.date(2023, 12, 31), model_dir=tmp_path / "b"
    )
    assert a["states"] == b["states"]
    assert np.array_equal(
        load_models(tmp_path / "a").stab.center, load_models(tmp_path / "b").stab.center
    )
