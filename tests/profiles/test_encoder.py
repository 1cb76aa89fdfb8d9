"""The profile encoder: its anchor moves no cosine, a typical entity predicts nothing, a
fragile one leans toward HIGH scenarios, text mixes in, and a changed artefact is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.errors import ModelError
from stabfrag.model.bundle import load_models, shipped_models
from stabfrag.model.joint import PROFILE_MODEL_ID
from stabfrag.model.linalg import normalise
from stabfrag.profiles.encoder import (
    INPUT_NAMES,
    ProfileEncoder,
    load_profile_encoder,
    orthogonal_anchor,
)
from stabfrag.scenarios.library import load_library
from stabfrag.scenarios.paths import synthetic_features


def _rows(encoder: ProfileEncoder, **moves: float) -> pl.DataFrame:
    """One input row at the calibration centre, moved by `moves` robust scales."""
    values = {}
    for name, centre, scale in zip(INPUT_NAMES, encoder.center, encoder.scale, strict=True):
        x = centre + moves.get(name, 0.0) * scale
        kind = encoder.manifest["inputs"][INPUT_NAMES.index(name)]["transform"]
        # Back from the transformed scale to the raw value.
        values[name] = [
            float(np.exp(x)) if kind == "log" else float(np.expm1(x)) if kind == "log1p" else x
        ]
    return pl.DataFrame(values)


def test_the_anchor_is_orthogonal_to_every_state_and_scenario() -> None:
    models = load_models()
    anchor = orthogonal_anchor(models.stab.projection)
    assert np.linalg.norm(anchor) == pytest.approx(1.0)
    assert np.abs(models.stab.projection @ anchor).max() < 1e-12
    library = load_library()
    feats = synthetic_features(library, models.scen.baseline())
    scen, _ = models.scen.encode_scenarios(feats)
    assert np.abs(scen.astype(np.float64) @ anchor).max() < 1e-6


def test_a_typical_entity_sits_at_the_anchor_and_a_fragile_one_leans_to_high() -> None:
    models = load_models()
    encoder = load_profile_encoder(shipped_models())
    anchor = orthogonal_anchor(models.stab.projection)
    library = load_library()
    feats = synthetic_features(library, models.scen.baseline())
    scen, _ = models.scen.encode_scenarios(feats)
    high = scen[[s.severity == "HIGH" for s in library]].astype(np.float64)
    typical, _ = encoder.encode(_rows(encoder), models.stab)
    fragile, _ = encoder.encode(
        _rows(encoder, vol_504=3.0, worst_drawdown_504=-3.0, beta=3.0), models.stab
    )
    quiet, _ = encoder.encode(_rows(encoder, vol_504=-2.0, worst_drawdown_504=2.0), models.stab)
    assert float(typical[0] @ anchor) > 0.9
    # (In v3 a scenario has no own block: a profile meets HIGH scenarios through the risk
    # angle it turns, so the lean is smaller than v1's and only its direction is tested.)
    assert (high @ fragile[0]).max() > (high @ typical[0]).max() + 0.1
    assert (high @ typical[0]).max() < 0.1
    assert (high @ quiet[0]).max() < (high @ typical[0]).max()


def test_text_is_mixed_in_after_normalising() -> None:
    models = load_models()
    encoder = load_profile_encoder(shipped_models())
    rows = pl.concat([_rows(encoder), _rows(encoder, vol_504=2.0)])
    text = normalise(np.random.default_rng(1).standard_normal((2, 384)))[0]
    alone, _ = encoder.encode(rows, models.stab)
    mixed, ok = encoder.encode(rows, models.stab, text=text, has_text=np.array([True, False]))
    w = encoder.text_weight
    want = normalise((1 - w) * alone[:1].astype(np.float64) + w * text[:1])[0]
    np.testing.assert_allclose(mixed[0], want[0], atol=1e-6)
    assert np.array_equal(mixed[1], alone[1]) and ok.all()


def test_a_changed_or_foreign_artefact_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    shutil.copytree(shipped_models() / PROFILE_MODEL_ID, folder / PROFILE_MODEL_ID)
    target = folder / PROFILE_MODEL_ID
    proj = np.load(target / "projection.npy")
    np.save(target / "projection.npy", proj * 1.01)
    with pytest.raises(ModelError, match="does not match"):
        load_profile_encoder(folder)
    shutil.copy(shipped_models() / PROFILE_MODEL_ID / "projection.npy", target / "projection.npy")
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["inputs"] = manifest["inputs"][:-1]
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="other inputs"):
        load_profile_encoder(folder)
    encoder = load_profile_encoder(shipped_models())
    v2 = load_models(model="joint-stab-fragility-v2")
    with pytest.raises(ModelError, match="basis"):
        encoder.encode(_rows(encoder), v2.stab)
