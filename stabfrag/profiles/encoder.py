"""joint-profile-core-v1: behaviour traits and fundamentals mapped into the stab space.

A profile is the state the entity's structure predicts for it: its traits and reported
figures, robust-scaled, go through a fitted linear map into the z-scores of the stab
encoder (the mean standardised state of the entity over the following year, fitted on
synthetic ground truth), and then through the stab encoder itself. So the profile sits in
the same basis as states and scenarios: a levered, volatile, thinly traded entity's
profile points where stressed states do, a quiet one's away from them.

The target is each date's deviation from the cross-section, so a typical entity predicts
nothing. Every profile also holds a fixed anchor orthogonal to the whole stab basis (no
state or scenario has any cosine with it), `anchor` long: a profile vector is unit, so
its length cannot say how unusual the entity is, but its angle from the anchor can. A
typical entity's profile is about the anchor and moves no cosine; an extreme one leans
far toward its direction. A text vector, when given, is added after both are normalised,
with the artefact's text weight.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.errors import ModelError
from stabfrag.model.encoder import CLIP, MAD_TO_SIGMA, Encoder, transform_expr
from stabfrag.model.joint import PROFILE_MODEL_ID
from stabfrag.model.linalg import matmul_rows, normalise
from stabfrag.model.manifest import (
    content_hash,
    read_verified,
    write_artefact,
)
from stabfrag.profiles.behaviour import TRAITS
from stabfrag.profiles.fundamentals import FIELDS

TRANSFORMS: dict[str, str] = {**{t.name: t.transform for t in TRAITS}, **FIELDS}
INPUT_NAMES = tuple(TRANSFORMS)
DEFAULT_TEXT_WEIGHT = 0.5


def transformed(frame: pl.DataFrame) -> np.ndarray:
    """The transformed inputs (n, d) in INPUT_NAMES order, NaN where null or not finite."""
    cols = [transform_expr(n, TRANSFORMS[n]).cast(pl.Float64).alias(n) for n in INPUT_NAMES]
    x = frame.select(cols).to_numpy().astype(np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


def robust_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 * MAD per column, ignoring NaN (scale 1 where there is no spread)."""
    with np.errstate(all="ignore"):
        empty = np.isnan(x).all(axis=0)
        safe = np.where(empty[None, :], 0.0, x)
        center = np.nanmedian(safe, axis=0)
        mad = np.nanmedian(np.abs(safe - center), axis=0) * MAD_TO_SIGMA
    return np.where(empty, 0.0, center), np.where((mad > 1e-12) & ~empty, mad, 1.0)


@dataclass(frozen=True)
class ProfileEncoder:
    """The fitted artefact: input calibration, the map into the stab z-scores, text weight."""

    center: np.ndarray
    scale: np.ndarray
    mapping: np.ndarray  # (inputs + 1, stab features): the last row is the constant
    anchor: float  # length of the orthogonal anchor, in projected stab units
    text_weight: float
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return content_hash(self.manifest)

    @property
    def stab_model(self) -> str:
        return str(self.manifest["stab_basis"])

    def inputs(self, frame: pl.DataFrame) -> np.ndarray:
        """[robust z-scores clipped to [-6, 6] (a null is the median, 0), 1] per row."""
        z = np.clip((transformed(frame) - self.center) / self.scale, -CLIP, CLIP)
        return np.hstack([np.nan_to_num(z, nan=0.0), np.ones((len(z), 1))])

    def predicted(self, frame: pl.DataFrame) -> np.ndarray:
        """The stab z-scores the structure predicts, per row."""
        return matmul_rows(self.inputs(frame), self.mapping)

    def encode(
        self,
        frame: pl.DataFrame,
        stab: Encoder,
        *,
        text: np.ndarray | None = None,
        has_text: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(float32 unit profile vectors (n, 384), rows with any signal)."""
        if stab.model_id != self.stab_model:
            raise ModelError(
                f"{PROFILE_MODEL_ID} was fitted in the basis of {self.stab_model}, "
                f"not {stab.model_id}; pass a model folder whose joint model uses it"
            )
        raw = self.projected(frame, stab) + self.anchor * orthogonal_anchor(stab.projection)
        unit, ok = normalise(raw)
        if text is not None and has_text is not None and has_text.any():
            w = self.text_weight * has_text.astype(np.float64)
            unit, ok = normalise((1.0 - w)[:, None] * unit + w[:, None] * text)
        return unit.astype(np.float32), ok

    def projected(self, frame: pl.DataFrame, stab: Encoder) -> np.ndarray:
        """The predicted state through the stab encoder's projection, before normalising."""
        return stab.project_deviation(self.predicted(frame))


def orthogonal_anchor(projection: np.ndarray) -> np.ndarray:
    """A unit 384-vector orthogonal to every row of `projection` (the stab basis, which
    scenarios share), seeded by the profile model id: the same on every machine."""
    seed = int(hashlib.sha256(PROFILE_MODEL_ID.encode()).hexdigest()[:16], 16)
    gauss = np.random.default_rng(seed).standard_normal(projection.shape[1])
    q, _ = np.linalg.qr(projection.T)  # an orthonormal basis of the rows' span
    rest = gauss - q @ (q.T @ gauss)
    out: np.ndarray = rest / np.linalg.norm(rest)
    return out


def write_profile_encoder(
    folder: Path,
    *,
    center: np.ndarray,
    scale: np.ndarray,
    mapping: np.ndarray,
    anchor: float,
    stab_basis: str,
    extra: dict[str, Any],
    text_weight: float = DEFAULT_TEXT_WEIGHT,
) -> Path:
    """Write `folder/joint-profile-core-v1/`: manifest.json and the map as projection.npy."""
    manifest = {
        "kind": "profile-encoder",
        "inputs": [
            {"name": n, "transform": TRANSFORMS[n], "center": float(c), "scale": float(s)}
            for n, c, s in zip(INPUT_NAMES, center, scale, strict=True)
        ],
        "stab_basis": stab_basis,
        "anchor": anchor,
        "text_weight": text_weight,
        "construction": "[clip((transform(x) - center) / scale, -6, 6), null -> 0, 1] "
        "@ projection -> stab z-scores -> the stab encoder's projection, + anchor * a unit "
        "vector orthogonal to it -> L2 normalise; mixed with text_weight * text vector "
        "(both unit) -> L2 normalise",
        **extra,
    }
    return write_artefact(folder, PROFILE_MODEL_ID, mapping, manifest)


def load_profile_encoder(folder: Path) -> ProfileEncoder:
    """Load and verify the profile artefact; refuse one built for other inputs."""
    manifest, mapping = read_verified(folder, PROFILE_MODEL_ID)
    names = tuple(i["name"] for i in manifest.get("inputs", []))
    if names != INPUT_NAMES:
        raise ModelError(f"{folder / PROFILE_MODEL_ID}: fitted for other inputs; refit it")
    if mapping.shape[0] != len(names) + 1:
        raise ModelError(f"{folder / PROFILE_MODEL_ID}: map shape {mapping.shape} is wrong")
    return ProfileEncoder(
        center=np.array([i["center"] for i in manifest["inputs"]], dtype=np.float64),
        scale=np.array([i["scale"] for i in manifest["inputs"]], dtype=np.float64),
        mapping=mapping,
        anchor=float(manifest["anchor"]),
        text_weight=float(manifest["text_weight"]),
        manifest=manifest,
    )
