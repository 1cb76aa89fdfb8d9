"""joint-stab-fragility-v2: the objective, its numpy solver and the fitted artefacts.

The input of a state is [z, c, 1]: its robust z-scores, the z-scores of its market
(context) and a constant. The fit learns one weight per (block, feature group) and one
for the constant, so that each state's cosine nearest scenarios are those of its own
episode type: proxy-NCA (a softmax over the library's scenarios, with every scenario of
the state's type counted as a hit; calm states' type is BASELINE), class-balanced, with
an L2 penalty on the log-weights (toward the unfitted weights). The state's own block
keeps v1's group weights, which rank entities within a date; the fit learns how much of
each group of the market block, and of the constant, to add (nine numbers). A richer map
(per feature or a full matrix) fitted the synthetic generator better and did not carry
over to real markets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stabfrag.features.registry import (
    FEATURE_NAMES,
    FEATURE_SET,
    GROUP_VOTES,
    SPEC_OF,
    feature_set_hash,
)
from stabfrag.model.encoder import Encoder, feature_entries, projection_for
from stabfrag.model.joint import DEFAULT_TAU, DEFAULT_WEIGHTS, JOINT_V2, write_joint
from stabfrag.model.manifest import (
    write_artefact,
)
from stabfrag.schema import DIM

STAB_V2 = "num-stab-core-v2"
SCEN_V2 = "num-scenario-core-v2"
GROUPS = tuple(GROUP_VOTES)
OBJECTIVE = (
    "proxy-NCA over the scenario library: minimise -log sum_{s of the state's type} "
    "softmax_s(cos(W x, W x_s) / tau_fit), classes weighted equally, + lam * |log w|^2; "
    "x = [z, market z, 1], W diagonal: v1's group weights on z, one fitted weight per "
    "feature group on market z and one on the constant"
)


def parameter_index(features: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """For each input coordinate ([z, context z, 1]), the index of its fitted weight."""
    group = np.array([GROUPS.index(SPEC_OF[n].group) for n in features])
    return np.concatenate([group, len(GROUPS) + group, [2 * len(GROUPS)]])


ISOLATED_GROUPS = ("spread",)  # never filled from other groups, nor used to fill them


def imputation_covariance(z: np.ndarray) -> np.ndarray:
    """Covariance of the z-scores (pairwise-complete), with the spread group cut off from
    the rest: a short history's vol_252 or vol_ratio is filled from the windows it has, but
    a fund without a credit spread is not given one guessed from its volatility."""
    d = z.shape[1]
    ok = ~np.isnan(z)
    x = np.where(ok, z, 0.0)
    pairs = ok.T.astype(np.float64) @ ok.astype(np.float64)
    cov = np.divide(x.T @ x, pairs, out=np.zeros((d, d)), where=pairs > 1)
    isolated = np.array([SPEC_OF[n].group in ISOLATED_GROUPS for n in FEATURE_NAMES])
    cov *= isolated[:, None] == isolated[None, :]
    vals, vecs = np.linalg.eigh(cov)  # positive semi-definite, whatever the pairwise gaps
    return (vecs * np.clip(vals, 1e-6, None)) @ vecs.T


@dataclass(frozen=True)
class Fitted:
    """The fitted log-weights and the solver's trace."""

    log_weights: np.ndarray  # one per (block, group), then the constant
    loss: list[float]


def free_parameters() -> np.ndarray:
    """The parameters the fit moves: the market block's groups and the constant."""
    free = np.zeros(2 * len(GROUPS) + 1, dtype=bool)
    free[len(GROUPS) :] = True
    return free


def fit_weights(
    x: np.ndarray,
    types: np.ndarray,
    x_scen: np.ndarray,
    scen_types: np.ndarray,
    base: np.ndarray,
    *,
    lam: float,
    tau: float = 0.1,
    iters: int = 300,
    lr: float = 0.03,
) -> Fitted:
    """Adam on the proxy-NCA loss; `base` are the unfitted input weights (deterministic)."""
    pidx = parameter_index()
    theta = np.zeros(pidx.max() + 1)
    hit = scen_types[None, :] == types[:, None]
    classes, counts = np.unique(types, return_counts=True)
    w = (1.0 / (len(classes) * counts))[np.searchsorted(classes, types)]
    m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
    losses = []
    for it in range(1, iters + 1):  # solver iterations
        a = base * np.exp(theta)[pidx]
        u, v = x * a, x_scen * a
        nu = np.linalg.norm(u, axis=1, keepdims=True)
        nv = np.linalg.norm(v, axis=1, keepdims=True)
        un, vn = u / nu, v / nv
        logits = un @ vn.T / tau
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        pos = (p * hit).sum(axis=1)
        losses.append(float(-(w * np.log(pos + 1e-12)).sum() + lam * (theta**2).sum()))
        g = (p - p * hit / (pos[:, None] + 1e-12)) * w[:, None]
        dun, dvn = g @ vn / tau, g.T @ un / tau
        du = (dun - (dun * un).sum(axis=1, keepdims=True) * un) / nu
        dv = (dvn - (dvn * vn).sum(axis=1, keepdims=True) * vn) / nv
        da = (x * du).sum(axis=0) + (x_scen * dv).sum(axis=0)
        grad = np.bincount(pidx, weights=da * a, minlength=len(theta)) + 2 * lam * theta
        grad *= free_parameters()  # the own block stays at v1's weights
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        theta -= lr * (m1 / (1 - 0.9**it)) / (np.sqrt(m2 / (1 - 0.999**it)) + 1e-8)
    return Fitted(theta, losses)


def input_weights(v1: Encoder, log_weights: np.ndarray, constant: float) -> np.ndarray:
    """The weight of every input coordinate: v1's group weights on both blocks, `constant`
    on the constant, times the fitted multipliers."""
    base = np.concatenate([v1.weight, v1.weight, [constant]])
    return base * np.exp(log_weights)[parameter_index(v1.features)]


def constant_scale(x: np.ndarray, v1: Encoder) -> float:
    """The median length of the weighted [z, context] of `x`: the constant is as long as a
    typical state, so a typical state sits halfway between calm and its own direction and a
    mild move stays near calm (cosine alone ignores intensity)."""
    weights = np.concatenate([v1.weight, v1.weight])
    return float(np.median(np.linalg.norm(x[:, :-1] * weights, axis=1)))


def write_v2(
    folder: Path,
    v1: Encoder,
    *,
    log_weights: np.ndarray,
    constant: float,
    covariance: np.ndarray,
    record: dict[str, Any],
) -> Path:
    """Write num-stab-core-v2, its scenario copy and joint-stab-fragility-v2 into `folder`."""
    multipliers = np.exp(log_weights)
    fitted = {
        "own": dict(zip(GROUPS, multipliers[: len(GROUPS)].round(6).tolist(), strict=True)),
        "context": dict(
            zip(GROUPS, multipliers[len(GROUPS) : 2 * len(GROUPS)].round(6).tolist(), strict=True)
        ),
        "constant": round(float(multipliers[-1]), 6),
    }
    return write_context_models(
        folder,
        v1,
        ids=(STAB_V2, SCEN_V2, JOINT_V2),
        weights=input_weights(v1, log_weights, constant),
        covariance=covariance,
        description=fitted,
        record={"objective": OBJECTIVE, **record},
    )


@dataclass(frozen=True)
class RiskAngle:
    """v3's risk angle: r's coefficients, its scale in the angle, the own block's length."""

    coefficients: np.ndarray
    scale: float
    own_length: float

    def entries(self, *, scenario: bool) -> dict[str, Any]:
        """The encoder manifest's fields: a scenario sits at the exposed end, no own block."""
        return {
            "risk_coefficients": [float(c) for c in self.coefficients],
            "risk_scale": self.scale,
            "exposed_end": scenario,
            "own_length": 0.0 if scenario else self.own_length,
        }


INPUT_V2 = "[z (clipped robust z-scores, nulls imputed), market context z, 1]"
INPUT_V3 = (
    "[own = z * own_length / |weighted z| (z: clipped robust z-scores, nulls imputed), "
    "market context z, cos a, sin a, 1]; a = (pi/2) sigmoid(r / risk_scale), "
    "r = risk_coefficients . (z - market context z); a = pi/2 with exposed_end"
)


def write_context_models(
    folder: Path,
    v1: Encoder,
    *,
    ids: tuple[str, str, str],
    weights: np.ndarray,
    covariance: np.ndarray,
    description: dict[str, Any],
    record: dict[str, Any],
    risk: RiskAngle | None = None,
) -> Path:
    """Write a context encoder, its scenario copy (one projection: one basis) and the joint
    model naming them. `description` is what the fit chose; `risk` v3's risk angle."""
    stab_id, scen_id, joint_id = ids
    projection = projection_for(stab_id, len(weights))
    for model_id in (stab_id, scen_id):
        manifest = {
            "kind": "context-encoder",
            "feature_set": FEATURE_SET,
            "feature_set_hash": feature_set_hash(),
            "features": feature_entries(v1.features, v1.center, v1.scale),
            "input": INPUT_V2 if risk is None else INPUT_V3,
            "input_weights": [float(w) for w in weights],
            **({} if risk is None else risk.entries(scenario=model_id == scen_id)),
            "fitted_multipliers": description,
            "covariance": [[float(v) for v in row] for row in covariance],
            "imputation": "conditional mean given the row's observed z (Gaussian, the "
            "spread group cut off from the others)",
            "calibration": {**v1.manifest["calibration"], "from": v1.model_id},
            "projection": f"QR of a Gaussian 384 x {'(2d+1)' if risk is None else '(2d+3)'} "
            f"matrix seeded by sha256({stab_id})",
            "projection_seed": stab_id,
            "dimension": DIM,
        }
        write_artefact(folder, model_id, projection, manifest)
    write_joint(
        folder,
        weights=DEFAULT_WEIGHTS,
        tau=DEFAULT_TAU,
        model_id=joint_id,
        stab_id=stab_id,
        scen_id=scen_id,
        extra={
            **{k: v for k, v in record.items() if k == "objective"},
            "context": "market z-scores of the state's as-of date: the median over the build's "
            "states, or the --market entity's state; a scenario's context is its own state",
            **{k: v for k, v in record.items() if k != "objective"},
        },
    )
    return folder


def rounded(figures: dict[str, float]) -> dict[str, float | None]:
    """Figures for a manifest: 4 decimals, null for what could not be computed."""
    return {k: (None if not math.isfinite(v) else round(v, 4)) for k, v in figures.items()}
