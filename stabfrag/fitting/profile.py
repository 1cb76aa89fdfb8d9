"""Fit joint-profile-core-v1 on synthetic ground truth.

Generated markets with structure (leveraged and inverse funds, balance-sheet leverage that
raises exposure and the chance of blow-ups and credit stress, thin liquidity) give, for
every month-end state, the entity's traits and fundamentals as known then, and what
followed: how the entity looked beside the others when stress came, the mean over its
labelled stress states of the next three years of its standardised stab state less the
same date's mean. A ridge regression maps the first to the second; its penalty is chosen
on a market of another seed. Real labels play no part.

(A first target, the mean state of the next 12 month-ends whatever came, ranked entities
less well on the synthetic cross-section and lost more on real data; bench/README.md
has both.)
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.labels import label_states
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.fitting.v2 import Universe, month_end_states
from stabfrag.model.bundle import load_models
from stabfrag.model.encoder import Encoder
from stabfrag.model.linalg import matmul_rows
from stabfrag.profiles.encoder import (
    INPUT_NAMES,
    ProfileEncoder,
    robust_scale,
    transformed,
    write_profile_encoder,
)
from stabfrag.profiles.fundamentals import FIELD_NAMES, read_fundamentals
from stabfrag.profiles.inputs import profile_inputs
from stabfrag.schema import ENTITY, date_span
from stabfrag.synth import generate, labels_from_events, write_market

PENALTIES = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
TRAIN = (Universe(201, 400, 2520), Universe(202, 300, 2520))
VALIDATION = Universe(203, 400, 2520)


STRESS_HORIZON_DAYS = 1096  # future stress states within three years


def _date_deviation(states: pl.DataFrame, z: np.ndarray) -> np.ndarray:
    """z less the mean of the same date's states."""
    frame = pl.DataFrame(z, schema=[f"_{i}" for i in range(z.shape[1])]).with_columns(
        states["as_of_date"]
    )
    means = frame.select(pl.all().exclude("as_of_date").fill_nan(None).mean().over("as_of_date"))
    return z - means.to_numpy().astype(np.float64)


def future_stress_deviation(states: pl.DataFrame, z: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """Per state, the mean over the entity's stress states in the next three years of their
    deviation from the same date's states (NaN without one): how this entity looks beside
    the others when stress comes."""
    dev = _date_deviation(states, z)
    codes = states[ENTITY].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    days = states["as_of_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    span = int(days.max() - days.min()) + STRESS_HORIZON_DAYS + 2
    key = codes * span + (days - days.min())
    hit = np.flatnonzero(stress)
    order = hit[np.argsort(key[hit], kind="stable")]
    keys = key[order]
    sums = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(dev[order], axis=0)])
    lo = np.searchsorted(keys, key, side="right")
    hi = np.searchsorted(keys, key + STRESS_HORIZON_DAYS, side="right")
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums[hi] - sums[lo]) / count[:, None]
    return np.where(count[:, None] > 0, mean, np.nan)


@dataclass(frozen=True)
class Sample:
    """One market's fitting rows: the profile inputs and the state stress brought."""

    inputs: pl.DataFrame
    target: np.ndarray


def sample(universe: Universe, stab: Encoder) -> Sample:
    """The fitting rows of one generated structural market."""
    market = generate(universe.entities, universe.days, universe.seed, structural=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_market(market, Path(tmp))
        prices, states, dates = month_end_states(paths["prices"])
        last = prices["date"].max()
        assert isinstance(last, dt.date)
        fundamentals = read_fundamentals(paths["fundamentals"], known_until=last).rows
    labels = labels_from_events(market.events, *date_span(prices["date"]))
    tagged = label_states(states.select(ENTITY, "as_of_date").with_row_index("_s"), labels)
    stress = np.zeros(states.height, dtype=bool)
    stress[tagged.filter(pl.col("label") == "stress")["_s"].to_numpy()] = True
    z = stab.standardised(states.select(FEATURE_NAMES))
    target = future_stress_deviation(states, z, stress)
    keyed = states.select(ENTITY, "as_of_date").with_row_index("_state")
    inputs, _ = profile_inputs(prices, dates, market=None, fundamentals=fundamentals)
    rows = inputs.join(keyed, on=[ENTITY, "as_of_date"], how="inner").sort("_state")
    y = target[rows["_state"].to_numpy()]
    keep = np.isfinite(y).all(axis=1)
    return Sample(rows.filter(pl.Series(keep)).drop("_state"), y[keep])


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """argmin |x w - y|^2 + penalty |w|^2 (the constant column is not penalised)."""
    reg = penalty * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + reg, x.T @ y)


def r_squared(pred: np.ndarray, y: np.ndarray) -> float:
    """1 - SSE / SST over every output (pooled)."""
    return float(1.0 - ((y - pred) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum())


def fit_profile(model_dir: Path) -> dict[str, Any]:
    """Fit the profile map in the basis of the shipped default joint model's stab encoder,
    choose the penalty on the validation market, write the artefact into `model_dir`."""
    stab = load_models().stab
    train = [sample(u, stab) for u in TRAIN]
    valid = sample(VALIDATION, stab)
    center, scale = robust_scale(transformed(pl.concat([s.inputs for s in train])))

    unfitted = ProfileEncoder(center, scale, np.zeros((len(INPUT_NAMES) + 1, 1)), 0.0, 0.0, {})

    def design(s: Sample) -> np.ndarray:
        return unfitted.inputs(s.inputs)

    x = np.vstack([design(s) for s in train])
    y = np.vstack([s.target for s in train])
    xv = design(valid)
    scores = {p: r_squared(matmul_rows(xv, ridge(x, y, p)), valid.target) for p in PENALTIES}
    best = max(scores, key=lambda p: scores[p])
    mapping = ridge(x, y, best)
    # One typical deviation (the RMS length of the fitted profiles, projected) leans a
    # profile 45 degrees from the anchor.
    fitted = stab.project_deviation(matmul_rows(x, mapping))
    anchor = float(np.sqrt((fitted**2).sum(axis=1).mean()))
    no_fund = xv.copy()
    no_fund[:, [INPUT_NAMES.index(f) for f in FIELD_NAMES]] = 0.0
    behaviour_only = ridge(x * _mask_fields(), y, best)
    figures = {
        "validation_r2": round(scores[best], 4),
        "validation_r2_by_penalty": {str(p): round(v, 4) for p, v in scores.items()},
        "validation_r2_behaviour_only": round(
            r_squared(matmul_rows(no_fund, behaviour_only), valid.target), 4
        ),
        "validation_r2_constant_only": round(
            r_squared(np.broadcast_to(y.mean(axis=0), valid.target.shape), valid.target), 4
        ),
    }
    extra = {
        "target": f"mean over the entity's labelled stress states of the next "
        f"{STRESS_HORIZON_DAYS} days of its standardised {stab.model_id} state, less the "
        "mean over the same date's states",
        "fitted_on": {
            "generator": "stabfrag.synth.generate(structural=True)",
            "train": [asdict(u) for u in TRAIN],
            "validation": asdict(VALIDATION),
            "rows": int(len(x)),
            "validation_rows": int(len(xv)),
        },
        "penalty": best,
        "market": "cross-sectional median daily log return",
        "figures": figures,
    }
    target = write_profile_encoder(
        model_dir, center=center, scale=scale, mapping=mapping, anchor=anchor,
        stab_basis=stab.model_id,
        extra=extra,
    )  # fmt: skip
    return {"artefact": str(target), "penalty": best, "anchor": round(anchor, 4), **figures}


def _mask_fields() -> np.ndarray:
    """1 for every design column but the fundamentals (0): the behaviour-only fit."""
    mask = np.ones(len(INPUT_NAMES) + 1)
    mask[[INPUT_NAMES.index(f) for f in FIELD_NAMES]] = 0.0
    return mask
