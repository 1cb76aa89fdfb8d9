"""Versioned encoder artefacts: load, verify, fit, encode (one matmul for all rows)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.atomic import write_atomic
from stabfrag.features import FEATURE_NAMES, FEATURE_SET, FEATURE_SPECS, feature_set_hash
from stabfrag.linalg import matmul_rows, normalise
from stabfrag.scenarios import Baseline
from stabfrag.schema import DIM, JOINT_MODEL_ID

STAB_MODEL_ID = "num-stab-core-v1"
SCEN_MODEL_ID = "num-scenario-core-v1"
CLIP = 6.0
MAD_TO_SIGMA = 1.4826
LOG_FLOOR = 1e-8  # a zero volatility must map to a finite (then clipped) value


class ModelError(Exception):
    """An artefact that is missing, changed or does not fit this code."""


# What each feature measures. Cosine similarity counts every coordinate, so the seven
# near-duplicate volatility levels would outvote the rest and a state's direction would
# mostly say how volatile the instrument always is (a 3x fund looks stressed when calm, a
# bond fund calm in a crash). Each group has votes instead: a feature's weight is
# votes / sqrt(features in its group), so a group whose features agree adds votes^2 of
# squared norm whatever its size.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "vol_level": (
        "vol_21",
        "vol_63",
        "vol_252",
        "downside_vol_63",
        "parkinson_vol_21",
        "vol_21_lag21",
        "vol_21_lag42",
    ),
    "vol_change": ("vol_ratio_21_252",),
    "returns": ("ret_21", "ret_63"),
    "tail": ("worst_ret_63", "es95_63"),
    "drawdown": ("dd_252", "max_dd_63", "dd_252_lag21", "dd_252_lag42", "days_since_peak_252"),
    "liquidity": ("amihud_63", "log_dollar_vol_63", "zero_volume_frac_63"),
    "volume_surge": ("volume_z_21_252",),
    "spread": ("spread_bps", "spread_chg_21"),
}
GROUP_OF = {name: group for group, names in FEATURE_GROUPS.items() for name in names}
# Stress is a departure from the instrument's own normal: the volatility against its own
# year counts double, the level it always has half. Chosen on the US ETF labels and
# checked on the synthetic ones (bench/README.md has both, with every group at 1 vote).
GROUP_VOTES: dict[str, float] = {g: 1.0 for g in FEATURE_GROUPS} | {
    "vol_change": 2.0,
    "vol_level": 0.5,
}
WEIGHTING = "votes of the group / sqrt(features in the group)"


def content_hash(manifest: dict[str, Any]) -> str:
    """sha256 of what the artefact computes: its manifest (calibration, weights, tau and the
    projection's sha256) without the creation time, so a recalibration changes it and a
    re-run of the same calibration does not."""
    payload = {k: v for k, v in manifest.items() if k != "created"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def group_weights(names: tuple[str, ...]) -> np.ndarray:
    """1/sqrt(size of the feature's group among `names`) for each feature."""
    missing = [n for n in names if n not in GROUP_OF]
    if missing:
        raise ModelError(f"feature(s) {', '.join(missing)} belong to no group in FEATURE_GROUPS")
    sizes = {g: sum(GROUP_OF[n] == g for n in names) for g in FEATURE_GROUPS}
    return np.array([GROUP_VOTES[GROUP_OF[n]] / math.sqrt(sizes[GROUP_OF[n]]) for n in names])


def transform_expr(name: str, kind: str) -> pl.Expr:
    """The per-feature transform applied before calibration."""
    col = pl.col(name)
    if kind == "log":
        return col.clip(lower_bound=LOG_FLOOR).log()
    if kind == "log1p":
        return col.clip(lower_bound=0.0).log1p()
    if kind == "slog1p":
        return col.sign() * col.abs().log1p()
    if kind == "identity":
        return col
    raise ModelError(f"unknown transform '{kind}' for feature {name}")


TRANSFORMS = {spec.name: spec.transform for spec in FEATURE_SPECS}


def transformed(frame: pl.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    """The transformed feature matrix (n, d), NaN where a feature is null."""
    cols = [transform_expr(n, TRANSFORMS[n]).cast(pl.Float64).alias(n) for n in names]
    return frame.select(cols).to_numpy().astype(np.float64)


def projection_for(model_id: str, d: int) -> np.ndarray:
    """A d x 384 projection with orthonormal rows, from a QR seeded by the model_id."""
    seed = int(hashlib.sha256(model_id.encode()).hexdigest()[:16], 16)
    gauss = np.random.default_rng(seed).standard_normal((DIM, d))
    q, r = np.linalg.qr(gauss)
    q = q * np.sign(np.diag(r))[None, :]  # fix the QR sign ambiguity
    return np.ascontiguousarray(q.T)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Encoder:
    """A numeric encoder: transforms, robust calibration and the projection to 384."""

    model_id: str
    features: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # per-feature weight applied to the z-score (group votes)
    projection: np.ndarray
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return content_hash(self.manifest)

    def baseline(self) -> Baseline:
        """The median entity of the calibration, where scenario paths start from."""
        centre = dict(zip(self.features, self.center, strict=True))
        return Baseline(
            vol=float(np.exp(centre["vol_252"])),
            dollar_volume=float(np.exp(centre["log_dollar_vol_63"])),
        )

    def calibrated(self, frame: pl.DataFrame) -> np.ndarray:
        """Robust z-scores clipped to [-6, 6], nulls as 0, times the feature weights: the
        vector before projection."""
        if tuple(c for c in frame.columns if c in self.features) != self.features:
            raise ModelError(
                f"{self.model_id}: the frame's feature columns are not {self.features}"
            )
        x = transformed(frame, self.features)
        z = np.clip((x - self.center) / self.scale, -CLIP, CLIP)
        return np.nan_to_num(z, nan=0.0) * self.weight

    def encode(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return (float32 unit vectors (n, 384), mask of rows that had any signal)."""
        unit, ok = normalise(matmul_rows(self.calibrated(frame), self.projection))
        return unit.astype(np.float32), ok


def fit_calibration(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 * MAD of each transformed feature, ignoring nulls.

    A feature with no spread (or no values) keeps scale 1 so it cannot divide by zero.
    """
    x = transformed(frame, FEATURE_NAMES)
    x[~np.isfinite(x)] = np.nan
    with np.errstate(all="ignore"):
        empty = np.isnan(x).all(axis=0)
        safe = np.where(empty[None, :], 0.0, x)
        center = np.nanmedian(safe, axis=0)
        mad = np.nanmedian(np.abs(safe - center), axis=0) * MAD_TO_SIGMA
    scale = np.where((mad > 1e-12) & ~empty, mad, 1.0)
    return np.where(empty, 0.0, center), scale


def write_encoder(
    folder: Path,
    model_id: str,
    *,
    center: np.ndarray,
    scale: np.ndarray,
    calibration: dict[str, Any],
    projection_seed: str | None = None,
) -> Path:
    """Write `folder/model_id/` with manifest.json and projection.npy.

    `projection_seed` names the model whose projection this one copies: states and
    scenarios are comparable only through one shared basis.
    """
    target = folder / model_id
    target.mkdir(parents=True, exist_ok=True)
    seed_id = projection_seed or model_id
    projection = projection_for(seed_id, len(FEATURE_NAMES))
    proj_path = write_atomic(target / "projection.npy", lambda p: _save_npy(p, projection))
    manifest = {
        "model_id": model_id,
        "kind": "numeric-encoder",
        "feature_set": FEATURE_SET,
        "feature_set_hash": feature_set_hash(),
        "features": [
            {
                "name": n,
                "transform": TRANSFORMS[n],
                "center": float(c),
                "scale": float(s),
                "group": GROUP_OF[n],
                "weight": float(w),
            }
            for n, c, s, w in zip(
                FEATURE_NAMES, center, scale, group_weights(FEATURE_NAMES), strict=True
            )
        ],
        "calibration": {
            **calibration,
            "method": "median, 1.4826*MAD, clip [-6, 6], null -> 0",
            "weighting": WEIGHTING,
        },
        "projection": "QR of a Gaussian 384 x d matrix seeded by sha256(projection_seed); "
        "rows orthonormal",
        "projection_seed": seed_id,
        "projection_sha256": _sha256(proj_path),
        "dimension": DIM,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    _write_manifest(target, manifest)
    return target


def write_joint(folder: Path, *, weights: dict[str, float], tau: float) -> Path:
    """Write the joint model artefact: branch weights, tau and its (identity) output map."""
    target = folder / JOINT_MODEL_ID
    target.mkdir(parents=True, exist_ok=True)
    proj_path = write_atomic(
        target / "projection.npy", lambda p: _save_npy(p, np.eye(DIM, dtype=np.float64))
    )
    manifest = {
        "model_id": JOINT_MODEL_ID,
        "kind": "joint",
        "branches": {"stab": STAB_MODEL_ID, "scen": SCEN_MODEL_ID, "prof": "joint-profile-core-v1"},
        "weights": weights,
        "tau": tau,
        "construction": "normalise(sum_b w_b z_b / sum of present w_b) @ projection (v1: identity)",
        "projection_sha256": _sha256(proj_path),
        "dimension": DIM,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    _write_manifest(target, manifest)
    return target


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)


def _write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(target / "manifest.json", lambda p: p.write_text(text))


def shipped_models() -> Path:
    """The folder of artefacts shipped inside the package."""
    return Path(str(resources.files("stabfrag") / "models"))


def _read_verified(folder: Path, model_id: str) -> tuple[dict[str, Any], np.ndarray]:
    target = folder / model_id
    manifest_path = target / "manifest.json"
    proj_path = target / "projection.npy"
    if not manifest_path.exists() or not proj_path.exists():
        raise ModelError(f"{target}: no artefact (manifest.json and projection.npy expected)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{manifest_path}: not valid JSON ({exc.msg})") from None
    if manifest.get("model_id") != model_id:
        raise ModelError(
            f"{manifest_path}: model_id is {manifest.get('model_id')!r}, not {model_id}"
        )
    actual = _sha256(proj_path)
    if actual != manifest.get("projection_sha256"):
        raise ModelError(
            f"{proj_path}: sha256 {actual[:12]}... does not match the manifest; refused"
        )
    projection = np.load(proj_path, allow_pickle=False)
    return manifest, projection


def load_encoder(folder: Path, model_id: str) -> Encoder:
    """Load and verify an encoder artefact; refuse one that changed or fits other features."""
    manifest, projection = _read_verified(folder, model_id)
    if manifest.get("feature_set_hash") != feature_set_hash():
        raise ModelError(
            f"{folder / model_id}: built for another definition of {FEATURE_SET}; recalibrate"
        )
    feats = manifest["features"]
    names = tuple(f["name"] for f in feats)
    if projection.shape != (len(names), DIM):
        raise ModelError(f"{folder / model_id}: projection shape {projection.shape} is wrong")
    return Encoder(
        model_id=model_id,
        features=names,
        center=np.array([f["center"] for f in feats], dtype=np.float64),
        scale=np.array([f["scale"] for f in feats], dtype=np.float64),
        # Artefacts written before feature weights existed weigh every feature 1.
        weight=np.array([f.get("weight", 1.0) for f in feats], dtype=np.float64),
        projection=projection,
        manifest=manifest,
    )


@dataclass(frozen=True)
class JointModel:
    weights: dict[str, float]
    tau: float
    projection: np.ndarray
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return content_hash(self.manifest)


def load_joint(folder: Path) -> JointModel:
    manifest, projection = _read_verified(folder, JOINT_MODEL_ID)
    return JointModel(
        weights={k: float(v) for k, v in manifest["weights"].items()},
        tau=float(manifest["tau"]),
        projection=projection,
        manifest=manifest,
    )


@dataclass(frozen=True)
class Models:
    """The three artefacts a build uses."""

    stab: Encoder
    scen: Encoder
    joint: JointModel

    def hashes(self) -> dict[str, str]:
        return {
            STAB_MODEL_ID: self.stab.sha256,
            SCEN_MODEL_ID: self.scen.sha256,
            JOINT_MODEL_ID: self.joint.sha256,
        }


def load_models(folder: Path | None = None) -> Models:
    folder = folder or shipped_models()
    models = Models(
        stab=load_encoder(folder, STAB_MODEL_ID),
        scen=load_encoder(folder, SCEN_MODEL_ID),
        joint=load_joint(folder),
    )
    if not np.array_equal(models.stab.projection, models.scen.projection):
        # Different bases would make cos(z_stab, z_scen) meaningless.
        raise ModelError(f"{folder}: {STAB_MODEL_ID} and {SCEN_MODEL_ID} use different projections")
    return models
