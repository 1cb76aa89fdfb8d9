"""joint-stab-fragility-v3: v2's market weather plus a fitted risk angle, so that
fragility ranks, within a date, the entities about to get hurt.

v2 knows *when* a market is stressed, but its market block is equal for every entity on a
date, and its own block ranks entities by how unusual they look in every feature at once:
worse than volatility alone ranks who falls. v3's input is [own, market z, cos a, sin a,
1]:
- r = c . (z - market z) is the state's risk against its market; c is a ridge regression,
  on the generator's ground truth, of each state's forward 63-row maximum drawdown (as a
  within-date rank) on its within-date z-scores;
- a = (pi/2) sigmoid(r / scale) turns r into an angle; every scenario sits at the exposed
  end (a = pi/2), so a state's cosine to any scenario grows with r;
- own is z at a fixed length: its direction still tells states apart, but every block of
  a state but the angle has the same length on a date, so fragility ranks the date's
  states exactly by r.
The fit keeps v2's market weights and chooses, on a validation universe, the own block's
length, the angle's length, r's scale and the constant's multiplier: the best within-date
rank IC of fragility that keeps v2's state AUC, analog precision and calm->HIGH. Only
generated markets are read; real prices play no part.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.who import rank_ic, who_figures
from stabfrag.errors import ModelError
from stabfrag.fitting.objective import RiskAngle, rounded, write_context_models
from stabfrag.fitting.v2 import (
    Universe,
    ground_truth,
    inputs,
    scenario_inputs,
    validation_figures,
)
from stabfrag.model.bundle import load_models
from stabfrag.model.encoder import Encoder, risk_score
from stabfrag.model.joint import (
    DEFAULT_TAU,
    DEFAULT_WEIGHTS,
    JOINT_V1,
    JOINT_V2,
    JOINT_V3,
    joint_states,
)
from stabfrag.model.linalg import normalise

STAB_V3 = "num-stab-core-v3"
SCEN_V3 = "num-scenario-core-v3"
RIDGE = (1e3, 1e4, 1e5, 1e6)  # penalties of the risk regression, chosen on the validation IC
OWN_LENGTHS = (1.0, 2.0, 3.0, 4.0, 6.0)  # the own block's weighted length (v2's median: 3.1)
RISK_LENGTHS = (1.0, 2.0, 3.0, 4.0)  # the risk angle's length
SCALES = (0.5, 1.0, 2.0)  # r's divisor in the angle (r: within-date standard deviation 1)
CONSTANTS = (1.0, 2.0)  # multipliers of v2's constant
# What v3 may give up of v2's validation figures for a better ranking within a date.
KEEP = {"state_auc": 0.005, "analog_precision_at_10": 0.03}
CALM_TO_HIGH = 0.01
SHOWN = ("state_auc", "analog_precision_at_10", "calm_to_high", "ic")
FOLLOWS_R = 0.99  # fragility must rank a date's states as r does, in any weather
TRAIN = (Universe(101, 400, 2520), Universe(102, 250, 2520))  # v2's seeds and sizes
VALIDATION = Universe(103, 300, 2520)


def within_date(values: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Each column minus its date's mean (a vectorised group transform)."""
    cols = [f"c{i}" for i in range(values.shape[1])]
    frame = pl.DataFrame({"g": dates}).with_columns(
        pl.Series(c, values[:, i]) for i, c in enumerate(cols)
    )
    return frame.select(pl.col(c) - pl.col(c).mean().over("g") for c in cols).to_numpy()


def rank_target(fwd: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The forward drawdown as a within-date rank in (-0.5, 0.5); NaN where unknown."""
    ok = np.isfinite(fwd)
    frame = pl.DataFrame({"v": fwd[ok], "g": dates[ok]})
    ranks = frame.select(
        (pl.col("v").rank("average").over("g") - 0.5) / pl.len().over("g") - 0.5
    ).to_series()
    out = np.full(len(fwd), np.nan)
    out[ok] = ranks.to_numpy()
    return out


def risk_coefficients(z: np.ndarray, fwd: np.ndarray, dates: np.ndarray, lam: float) -> np.ndarray:
    """Ridge coefficients of the within-date forward-drawdown rank on within-date z, scaled
    so that r has a within-date standard deviation of 1 on the data it was fitted on."""
    x, y = within_date(z, dates), rank_target(fwd, dates)
    ok = np.isfinite(y)
    a, b = x[ok], y[ok]
    coef = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)
    return coef / float(np.std(a @ coef))


def ic_of(score: np.ndarray, fwd: np.ndarray, dates: np.ndarray) -> dict[str, float]:
    figures = who_figures(rank_ic(score, fwd, dates))
    return {"ic": float(figures["ic"]), "ic_before_falls": float(figures["ic_before_falls"])}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One generated universe ready for the fit: inputs [z, c, 1] of every state, the
    imputed z, forward drawdowns, dates, and the labelled truth."""

    x: np.ndarray
    fwd: np.ndarray
    dates: np.ndarray
    truth: Any

    @property
    def z(self) -> np.ndarray:
        return self.x[:, : (self.x.shape[1] - 1) // 2]


def _sample(universe: Universe, v1: Encoder, covariance: np.ndarray) -> Sample:
    z, states, truth = ground_truth(universe, v1, forward=True)
    return Sample(
        x=inputs(z, states, covariance),
        fwd=states["fwd_dd"].to_numpy(),
        dates=states["as_of_date"].to_numpy(),
        truth=truth,
    )


Choice = tuple[float, float, float, float]


def candidate(v2: Encoder, coef: np.ndarray, choice: Choice) -> Encoder:
    """v3's state encoder for one choice (own length, the risk angle's length, r's scale,
    the constant's multiplier): v2's weights on the own and market blocks and the constant,
    the angle before it."""
    own, length, scale, constant = choice
    w = v2.weight
    return dataclasses.replace(
        v2,
        weight=np.concatenate([w[:-1], [length, length], constant * w[-1:]]),
        risk=coef,
        risk_scale=scale,
        own_length=own,
    )


def weighted(encoder: Encoder, x: np.ndarray, *, scenario: bool = False) -> np.ndarray:
    """The weighted input of rows [z, c, 1] (what the encoder projects); a scenario row has
    no own block and sits at the exposed end."""
    if scenario:
        encoder = dataclasses.replace(encoder, own_length=0.0, exposed_end=True)
    d = (x.shape[1] - 1) // 2
    return encoder._inputs(x[:, :d], x[:, d : 2 * d]) * encoder.weight


def _trial(
    val: Sample, x_scen: np.ndarray, table: pl.DataFrame, encoder: Encoder
) -> dict[str, float]:
    """Validation figures of one encoder: v2's figures on the labelled states and the
    within-date rank IC of fragility on every state."""
    x = weighted(encoder, val.x)
    xs = weighted(encoder, x_scen, scenario=True)
    labelled = val.truth.tagged["_state"].to_numpy()
    ones = np.ones(x.shape[1])
    figures = validation_figures(x[labelled], val.truth, xs, table, ones)
    high = (table["severity"] == "HIGH").to_numpy()
    z_scen = normalise(xs)[0]
    res = joint_states(normalise(x)[0], z_scen, high, weights=DEFAULT_WEIGHTS, tau=DEFAULT_TAU)
    return {
        **figures,
        **ic_of(res.fragility, val.fwd, val.dates),
        "follows_r": _follows_r(val, encoder, z_scen, high),
    }


WEATHER = 2.0  # how much further from calm than the generator's markets the check goes


def _follows_r(val: Sample, encoder: Encoder, z_scen: np.ndarray, high: np.ndarray) -> float:
    """The lowest mean within-date rank correlation of fragility with r, over the
    validation states with their market's weather at 1/WEATHER and WEATHER times its
    distance from calm: the geometry must rank a date by r in markets calmer or wilder
    than the generator's (a real calm stretch is far calmer than any generated one)."""
    d = (val.x.shape[1] - 1) // 2
    assert encoder.risk is not None
    worst = 1.0
    for factor in (1 / WEATHER, WEATHER):
        x = val.x.copy()
        x[:, d : 2 * d] *= factor
        r = risk_score(x[:, :d] - x[:, d : 2 * d], encoder.risk)
        res = joint_states(
            normalise(weighted(encoder, x))[0],
            z_scen,
            high,
            weights=DEFAULT_WEIGHTS,
            tau=DEFAULT_TAU,
        )
        worst = min(worst, float(rank_ic(res.fragility, r, val.dates)["ic"].to_numpy().mean()))
    return worst


def _v2_trial(val: Sample, x_scen: np.ndarray, table: pl.DataFrame, v2: Encoder) -> dict:
    """v2's own figures, the bar v3 keeps."""
    labelled = val.truth.tagged["_state"].to_numpy()
    figures = validation_figures(val.x[labelled], val.truth, x_scen, table, v2.weight)
    res = joint_states(
        normalise(val.x * v2.weight)[0],
        normalise(x_scen * v2.weight)[0],
        (table["severity"] == "HIGH").to_numpy(),
        weights=DEFAULT_WEIGHTS,
        tau=DEFAULT_TAU,
    )
    return {**figures, **ic_of(res.fragility, val.fwd, val.dates)}


def _ridge_choice(ridge: dict[float, np.ndarray], val: Sample) -> tuple[float, dict[float, float]]:
    """The heaviest penalty whose validation IC is within one standard error (over dates)
    of the best: the one-standard-error rule. The generator's cross-sections are simpler
    than real ones; the most averaged r that loses nothing measurable carries over best."""
    by_date = {
        k: rank_ic(risk_score(val.z, c), val.fwd, val.dates)["ic"].drop_nans().to_numpy()
        for k, c in ridge.items()
    }
    ic = {k: float(v.mean()) for k, v in by_date.items()}
    best = max(ic, key=lambda k: ic[k])
    se = float(by_date[best].std(ddof=1) / np.sqrt(len(by_date[best])))
    return max(k for k in ridge if ic[k] >= ic[best] - se), ic


def _kept(figures: dict[str, float]) -> float:
    return round(figures["state_auc"] + figures["analog_precision_at_10"], 4)


def _acceptable(figures: dict[str, float], v2: dict[str, float]) -> bool:
    return (
        figures["follows_r"] >= FOLLOWS_R
        and all(figures[k] >= v2[k] - slack for k, slack in KEEP.items())
        and figures["calm_to_high"] <= max(v2["calm_to_high"], CALM_TO_HIGH)
    )


def fit_v3(
    model_dir: Path,
    *,
    train: tuple[Universe, ...] = TRAIN,
    validation: Universe = VALIDATION,
) -> dict[str, Any]:
    """Fit joint-stab-fragility-v3 on synthetic ground truth and write its artefacts next to
    the v2 it extends (the folder's own, else the shipped one)."""
    own_v2 = (model_dir / JOINT_V2).is_dir()
    v2 = load_models(model_dir if own_v2 else None, JOINT_V2).stab
    v1 = _v1_of(model_dir)
    assert v2.covariance is not None
    samples = [_sample(u, v1, v2.covariance) for u in (*train, validation)]
    return _fit(model_dir, v1, v2, samples, train, validation)


def _fit(
    model_dir: Path,
    v1: Encoder,
    v2: Encoder,
    samples: list[Sample],
    train: tuple[Universe, ...],
    validation: Universe,
) -> dict[str, Any]:
    """Choose r's coefficients and the geometry on the samples, write the artefacts."""
    assert v2.covariance is not None
    fits, val = samples[:-1], samples[-1]
    z = np.vstack([m.z for m in fits])
    fwd, dates = np.concatenate([m.fwd for m in fits]), np.concatenate([m.dates for m in fits])
    # Dates of different universes must not pool: tag them by universe.
    tags = np.concatenate([np.full(len(m.dates), i) for i, m in enumerate(fits)])
    keys = np.char.add(tags.astype(str), np.char.add("|", dates.astype(str)))
    ridge = {lam: risk_coefficients(z, fwd, keys, lam) for lam in RIDGE}
    lam, ridge_ic = _ridge_choice(ridge, val)
    x_scen, table = scenario_inputs(v1, v2.covariance)
    base = _v2_trial(val, x_scen, table, v2)
    trials = {
        choice: _trial(val, x_scen, table, candidate(v2, ridge[lam], choice))
        for choice in itertools.product(OWN_LENGTHS, RISK_LENGTHS, SCALES, CONSTANTS)
    }
    ok = [k for k, f in trials.items() if _acceptable(f, base)]
    if not ok:
        raise ModelError("no v3 choice keeps v2's validation figures; nothing written")
    # IC to 3 decimals first (it is flat once fragility follows r), then the state AUC and
    # analog precision it keeps.
    best = max(ok, key=lambda k: (round(trials[k]["ic"], 3), _kept(trials[k]), k))
    record = _record(train, validation, lam, best)
    record["fitted_figures"] = {
        "validation": rounded(trials[best]),
        "validation_v2": rounded(base),
        "validation_risk_ic_by_ridge": {str(k): round(v, 4) for k, v in ridge_ic.items()},
    }
    own, length, scale, constant = best
    write_context_models(
        model_dir,
        v1,
        ids=(STAB_V3, SCEN_V3, JOINT_V3),
        weights=candidate(v2, ridge[lam], best).weight,
        covariance=v2.covariance,
        risk=RiskAngle(ridge[lam], scale, own),
        description={"from": JOINT_V2, **dict(zip(CHOICE, best, strict=True))},
        record={
            "objective": OBJECTIVE,
            **record,
            "validation_by_choice": {
                ", ".join(f"{n} {v}" for n, v in zip(CHOICE, k, strict=True)): [
                    round(f[n], 4) for n in (*SHOWN, "follows_r")
                ]
                for k, f in trials.items()
            },
        },
    )
    return {"model_dir": str(model_dir), "model": JOINT_V3, **record}


CHOICE = ("own_length", "risk_length", "risk_scale", "constant")


def _record(
    train: tuple[Universe, ...], validation: Universe, lam: float, best: Choice
) -> dict[str, Any]:
    """What v3's manifest records of its fit: data and hyperparameters."""
    return {
        "training_data": {
            "source": "stabfrag.synth.generate prices: forward 63-row maximum drawdowns and "
            "events (stabfrag.synth.labels_from_events)",
            "universes": [asdict(u) for u in train],
            "validation_universe": asdict(validation),
            "real_labels": "none",
        },
        "hyperparameters": {
            "ridge_tried": list(RIDGE),
            "ridge": lam,
            "ridge_rule": "the heaviest within one standard error (over dates) of the best "
            "validation IC of r",
            "tried": dict(zip(CHOICE, (OWN_LENGTHS, RISK_LENGTHS, SCALES, CONSTANTS), strict=True)),
            **dict(zip(CHOICE, best, strict=True)),
            "selection": "the best validation rank IC of fragility (3 decimals, then state AUC + "
            "precision@10) that keeps v2's state AUC "
            f"(-{KEEP['state_auc']}), precision@10 (-{KEEP['analog_precision_at_10']}) and "
            f"calm->HIGH (at most v2's or {CALM_TO_HIGH}), and whose fragility ranks each "
            f"date as r does (Spearman >= {FOLLOWS_R}) with the market's weather at 1/"
            f"{WEATHER} and {WEATHER} times its distance from calm",
        },
    }


OBJECTIVE = (
    "v2's market weights; r = c . (z - market z) with c a ridge regression of the within-date "
    "rank of the forward 63-row maximum drawdown on within-date z, as an angle whose exposed "
    "end holds every scenario; the own block at a fixed length; the lengths, r's scale and "
    "the constant chosen for the validation rank IC of fragility, keeping v2's figures"
)


def _v1_of(model_dir: Path) -> Encoder:
    """The v1 encoder whose calibration v2 was fitted from: the folder's own, else shipped."""
    return load_models(model_dir if (model_dir / JOINT_V1).is_dir() else None, JOINT_V1).stab
