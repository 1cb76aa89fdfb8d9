"""joint-stab-fragility-v1: the artefact, the scenario branch, the weighted joint vector,
nearest scenario and fragility."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stabfrag.errors import ModelError
from stabfrag.model.encoder import SCEN_MODEL_ID, STAB_MODEL_ID
from stabfrag.model.factors import FactorBlock
from stabfrag.model.linalg import by_row_spans, matmul_rows, normalise
from stabfrag.model.manifest import (
    content_hash,
    read_verified,
    write_artefact,
)
from stabfrag.schema import DIM

JOINT_V1 = "joint-stab-fragility-v1"
JOINT_V2 = "joint-stab-fragility-v2"
JOINT_V3 = "joint-stab-fragility-v3"
JOINT_V4 = "joint-stab-fragility-v4"
PROFILE_MODEL_ID = "joint-profile-core-v1"
# The profile weight is chosen from bench/profile_eval.py's figures (bench/README.md): the
# largest at which no real 2005-2011 figure among state AUC, calm->HIGH and the
# cross-section falls by more than 0.01 while the synthetic cross-section rises.
DEFAULT_WEIGHTS = {"stab": 1.0, "scen": 0.5, "prof": 0.25}
DEFAULT_TAU = 0.1


@dataclass(frozen=True)
class JointResult:
    """Joint vectors for entity states plus what each is nearest to."""

    vectors: np.ndarray  # float32 (n, 384), unit norm
    nearest: np.ndarray  # index into the scenarios, per state
    nearest_similarity: np.ndarray  # float64
    fragility: np.ndarray  # highest cosine similarity to a HIGH-severity scenario


def scenario_branch(z_stab: np.ndarray, z_scen: np.ndarray, tau: float) -> np.ndarray:
    """normalise(sum_s softmax_s(cos(z_stab, z_scen_s) / tau) z_scen_s).

    The scenario region a state sits in.
    """
    logits = matmul_rows(z_stab, z_scen.T) / tau
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    return normalise(matmul_rows(weights, z_scen), inplace=True)[0]


def combine(
    z_stab: np.ndarray,
    z_scen: np.ndarray | None,
    z_prof: np.ndarray | None,
    has_prof: np.ndarray | None,
    weights: dict[str, float],
) -> np.ndarray:
    """normalise((w_stab z_stab + w_scen z_scen + w_prof z_prof) / sum of present weights).

    A state without a profile drops that branch and its weight; z_scen is None when its
    weight is 0 (the blend is not computed). Only the weights' ratio
    matters: weights above 1 are scaled so the largest is 1, so no product can overflow
    (stab=1e308,scen=1e308 is stab=1,scen=1).
    """
    top = max(weights.values())
    if top > 1:
        weights = {k: v / top for k, v in weights.items()}
    # A new float64 array (cast, then scaled, in one pass): added to in place below.
    total = np.multiply(z_stab, weights["stab"], dtype=np.float64)
    if z_scen is not None:
        total += weights["scen"] * z_scen
    denom = np.full(len(z_stab), weights["stab"] + weights["scen"])
    if z_prof is not None and has_prof is not None:
        w = weights["prof"] * has_prof.astype(np.float64)
        total = total + w[:, None] * z_prof.astype(np.float64)
        denom = denom + w
    total /= denom[:, None]  # `total` is this function's own temporary
    return normalise(total, inplace=True)[0]


# States per block: matmul_rows' own block, so a block's dozen (n, 384) float64
# temporaries (3 MB each) stay in cache. 8,192 rows (25 MB each) took 0.71-0.75 s for
# 100,000 states against 0.48-0.52 s; the bytes are the same (rows are independent).
ROW_BLOCK = 1024


def joint_states(
    z_stab: np.ndarray,
    z_scen: np.ndarray,
    high: np.ndarray,
    *,
    weights: dict[str, float],
    tau: float,
    z_prof: np.ndarray | None = None,
    has_prof: np.ndarray | None = None,
    consume: bool = False,
    branch_scen: np.ndarray | None = None,
    date_blocks: tuple[np.ndarray, np.ndarray] | None = None,
) -> JointResult:
    """Joint vectors for states, with the nearest scenario and fragility in the joint space.

    Scenario rows of the joint space are z_scen itself, so similarities here are the ones
    a DuckDB `array_cosine_similarity` on the stored vectors gives. Rows are independent,
    so they are done in blocks: the same bytes, far less memory traffic. `consume` writes
    the joint vectors over `z_stab` (float32), each block once it has been read: a caller
    that needs z_stab no more saves a second (n, 384) array.

    A factor model gives the scenarios' vectors without their factor blocks
    (`branch_scen`, what the scenario branch blends) and each state's date block
    (`date_blocks`: (blocks (d, 384), each state's row among them)), added to the joint
    vector before it is normalised.
    """
    z_branch = z_scen if branch_scen is None else branch_scen
    n = len(z_stab)
    if consume and z_stab.dtype == np.float32:
        vectors = z_stab
    else:
        vectors = np.empty((n, z_stab.shape[1]), dtype=np.float32)
    nearest = np.empty(n, dtype=np.int64)
    similarity = np.empty(n)
    fragility = np.full(n, np.nan)
    has_high = bool(high.any())
    blend = weights["scen"] > 0  # a branch of weight 0 is not computed

    def rows(first: int, last: int) -> None:  # blocks of rows bound the temporaries
        for lo in range(first, last, ROW_BLOCK):
            hi = min(lo + ROW_BLOCK, last)
            prof = None if z_prof is None else z_prof[lo:hi]
            has = None if has_prof is None else has_prof[lo:hi]
            branch = scenario_branch(z_stab[lo:hi], z_branch, tau) if blend else None
            joint = combine(z_stab[lo:hi], branch, prof, has, weights)
            if date_blocks is not None:
                joint = normalise(joint + date_blocks[0][date_blocks[1][lo:hi]], inplace=True)[0]
            # The float32 vectors are written straight to their rows (the cast is the
            # assignment's), then read back for the similarities.
            vectors[lo:hi] = joint
            sims = matmul_rows(vectors[lo:hi], z_scen.T)
            nearest[lo:hi] = np.argmax(sims, axis=1)
            similarity[lo:hi] = sims[np.arange(hi - lo), nearest[lo:hi]]
            if has_high:
                fragility[lo:hi] = sims[:, high].max(axis=1)

    by_row_spans(n, rows)  # each span writes only its own rows
    return JointResult(
        vectors=vectors, nearest=nearest, nearest_similarity=similarity, fragility=fragility
    )


@dataclass(frozen=True)
class JointModel:
    """A joint model artefact: which encoders feed it, branch weights and tau."""

    model_id: str
    branches: dict[str, str]  # branch -> model_id of its encoder
    weights: dict[str, float]
    tau: float
    projection: np.ndarray
    manifest: dict[str, Any]
    factors: FactorBlock | None = None  # a factor model's date and scenario blocks

    @property
    def sha256(self) -> str:
        return content_hash(self.manifest)


def load_joint(folder: Path, model_id: str = JOINT_V1) -> JointModel:
    manifest, projection = read_verified(folder, model_id)
    branches = manifest.get("branches") or {}
    if not {"stab", "scen"} <= set(branches):
        raise ModelError(f"{folder / model_id}: manifest names no stab and scen branches")
    spec = manifest.get("factor_block")
    return JointModel(
        model_id=model_id,
        branches={k: str(v) for k, v in branches.items()},
        weights={k: float(v) for k, v in manifest["weights"].items()},
        tau=float(manifest["tau"]),
        projection=projection,
        manifest=manifest,
        factors=None if spec is None else FactorBlock.from_manifest(spec, projection),
    )


def write_joint(
    folder: Path,
    *,
    weights: dict[str, float],
    tau: float,
    model_id: str = JOINT_V1,
    stab_id: str = STAB_MODEL_ID,
    scen_id: str = SCEN_MODEL_ID,
    extra: dict[str, Any] | None = None,
    projection: np.ndarray | None = None,
) -> Path:
    """Write a joint model artefact: branches, weights, tau and its (identity) output map.

    `extra` adds what a fitted model records (objective, training data, figures);
    `projection`, a factor model's block basis, replaces the identity.
    """
    manifest = {
        "kind": "joint",
        "branches": {"stab": stab_id, "scen": scen_id, "prof": PROFILE_MODEL_ID},
        "weights": weights,
        "tau": tau,
        # (The v1 wording is kept: it is part of the shipped v1 artefact's content hash.)
        "construction": "normalise(sum_b w_b z_b / sum of present w_b) @ projection "
        + ("(v1: identity)" if model_id == JOINT_V1 else "(identity)"),
        **(extra or {}),
        "dimension": DIM,
    }
    basis = np.eye(DIM, dtype=np.float64) if projection is None else projection
    return write_artefact(folder, model_id, basis, manifest)
