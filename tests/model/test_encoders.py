from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.errors import ModelError
from stabfrag.features.registry import FEATURE_NAMES, FEATURE_SPECS, GROUP_VOTES, SPEC_OF
from stabfrag.model.bundle import load_models, shipped_models
from stabfrag.model.encoder import (
    CLIP,
    STAB_MODEL_ID,
    group_weights,
    load_encoder,
    projection_for,
    transformed,
)
from stabfrag.model.linalg import matmul_rows
from stabfrag.schema import DIM
from stabfrag.synth import Market

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
    day = [dt.date(2024, 12, 31)]
    shipped_run = BuildConfig(
        prices=market_dir / "prices.parquet", out=tmp_path / "o", model="joint-stab-fragility-v1"
    )
    loop.run(shipped_run, day)
    # A resume with the new calibration must rebuild, not keep the shipped model's vectors.
    config = BuildConfig(
        prices=market_dir / "prices.parquet", out=tmp_path / "o", model_dir=models, resume=True
    )
    summary = loop.run(config, day)
    assert summary.models["num-stab-core-v1"] == mine.stab.sha256 != shipped.stab.sha256
    assert summary.skipped_dates == [] and summary.states_out > 0


def test_calibration_ignores_data_outside_the_range(market_dir: Path, tmp_path: Path) -> None:
    from stabfrag.fitting.calibrate import calibrate

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


def test_every_feature_has_one_group_and_each_group_its_votes() -> None:
    assert {s.group for s in FEATURE_SPECS} == set(GROUP_VOTES)  # every group has votes
    w = group_weights(FEATURE_NAMES)
    for group in GROUP_VOTES:
        names = [s.name for s in FEATURE_SPECS if s.group == group]
        squared = sum(w[FEATURE_NAMES.index(n)] ** 2 for n in names)
        assert squared == pytest.approx(GROUP_VOTES[group] ** 2), group
    # Fewer features of a group share the same votes.
    sub = ("vol_21", "vol_63", "ret_21")
    assert group_weights(sub) == pytest.approx(
        [GROUP_VOTES["vol_level"] / np.sqrt(2)] * 2 + [GROUP_VOTES["returns"]]
    )
    with pytest.raises(ModelError, match="not in stab-features-v1"):
        group_weights(("vol_21", "moon_phase"))


def test_encoder_weighs_the_clipped_z_scores(market: Market) -> None:
    from stabfrag.features.plan import compute_features
    from stabfrag.model.joint import JOINT_V1

    models = load_models(None, JOINT_V1)
    frame = compute_features(market.prices.sort("entity_id", "date").head(3000))
    frame = frame.filter(pl.col("n_obs") >= 64).select(FEATURE_NAMES)
    x = transformed(frame, FEATURE_NAMES)
    z = np.nan_to_num(np.clip((x - models.stab.center) / models.stab.scale, -CLIP, CLIP))
    expected = z * np.array([f["weight"] for f in models.stab.manifest["features"]])
    assert np.array_equal(models.stab.calibrated(frame), expected)
    assert [f["group"] for f in models.stab.manifest["features"]] == [
        SPEC_OF[n].group for n in FEATURE_NAMES
    ]


def test_artefact_without_weights_weighs_every_feature_one(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(shipped_models(), folder)
    path = folder / STAB_MODEL_ID / "manifest.json"
    manifest = json.loads(path.read_text())
    for feature in manifest["features"]:
        del feature["weight"]
    path.write_text(json.dumps(manifest))
    assert np.array_equal(load_encoder(folder, STAB_MODEL_ID).weight, np.ones(len(FEATURE_NAMES)))


def test_model_hash_follows_the_calibration_not_the_creation_time(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(shipped_models(), folder)
    path = folder / STAB_MODEL_ID / "manifest.json"
    before = load_encoder(folder, STAB_MODEL_ID).sha256
    manifest = json.loads(path.read_text())
    manifest["created"] = "2001-01-01T00:00:00+00:00"
    path.write_text(json.dumps(manifest))
    assert load_encoder(folder, STAB_MODEL_ID).sha256 == before
    manifest["features"][0]["center"] += 0.5
    path.write_text(json.dumps(manifest))
    assert load_encoder(folder, STAB_MODEL_ID).sha256 != before


def test_imputed_rows_do_not_depend_on_the_rows_imputed_with_them() -> None:
    """Rows grouped by their null pattern (many patterns, every row in one): each row
    gets the bytes it gets alone, and what it had observed is kept."""
    from stabfrag.model.encoder import impute, null_patterns

    rng = np.random.default_rng(11)
    d = 9
    root = rng.standard_normal((d, d))
    covariance = root @ root.T / d + np.eye(d)
    z = rng.standard_normal((600, d))
    z[rng.random(z.shape) < 0.3] = np.nan
    z[5] = np.nan  # a row with nothing observed stays at the median
    whole = impute(z, covariance)
    for i in range(len(z)):
        assert whole[i].tobytes() == impute(z[i : i + 1], covariance)[0].tobytes(), i
    seen = ~np.isnan(z)
    assert (whole[seen] == z[seen]).all() and (whole[5] == 0).all()
    patterns, inverse = null_patterns(np.isnan(z))
    assert (patterns[inverse] == np.isnan(z)).all()
    assert len(patterns) == len(np.unique(np.isnan(z), axis=0))
