"""The ground truth joint-stab-fragility-v2 is fitted on, and the fit run itself.

Ground truth comes only from the synthetic generator: which entity was in which episode
type (market crash, volatility spike, blow-up, liquidity dry-up) and when, and the calm
stretches between. Several seeds and universe sizes are fitted on; the penalty is chosen
on a validation universe of another seed; real labels play no part. A generator seed
that neither uses is left for the judgement (`stabfrag evaluate`).
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.labels import label_states
from stabfrag.analysis.metrics import MAX_QUERIES, cross_section, figures_of
from stabfrag.analysis.who import forward_drawdown
from stabfrag.asof.calendar import as_of_dates
from stabfrag.asof.requests import state_requests
from stabfrag.config import MAX_STALENESS_DAYS
from stabfrag.features.plan import compute_features
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.fitting.objective import (
    STAB_V2,
    constant_scale,
    fit_weights,
    imputation_covariance,
    input_weights,
    rounded,
    write_v2,
)
from stabfrag.ingest.prices import read_prices, validate
from stabfrag.model.bundle import joint_models, load_models
from stabfrag.model.encode import market_context
from stabfrag.model.encoder import Encoder, impute
from stabfrag.model.joint import DEFAULT_TAU, DEFAULT_WEIGHTS, JOINT_V1, joint_states
from stabfrag.model.linalg import normalise
from stabfrag.scenarios.library import SHOCK_TYPES, library_frame, load_library
from stabfrag.scenarios.paths import synthetic_features
from stabfrag.schema import DATE, ENTITY, POS
from stabfrag.synth import generate, labels_from_events, write_market

TYPES = ("BASELINE", *(t for t in SHOCK_TYPES if t != "BASELINE"))
WARM_UP_DAYS = 400  # calendar days before the first state: a year of history


@dataclass(frozen=True)
class Universe:
    """One generated market: seed, entities, trading days."""

    seed: int
    entities: int
    days: int


@dataclass(frozen=True)
class Truth:
    """The labelled month-end states of a universe: their z-scores (NaN where null), their
    market context (filled later), episode types, and the labelled frame."""

    z: np.ndarray
    tagged: pl.DataFrame
    types: np.ndarray


def month_end_states(
    prices_path: Path,
) -> tuple[pl.DataFrame, pl.DataFrame, list[dt.date]]:
    """(valid prices, every month-end state with its features, the dates) of a generated
    market written at `prices_path`: the same reader and calendar as a backfill."""
    prices = validate(read_prices(prices_path), min_prices=0).prices
    first, last = prices["date"].min(), prices["date"].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    dates = as_of_dates(prices_path, first + dt.timedelta(days=WARM_UP_DAYS), last, "month")
    requests, _ = state_requests(prices, dates, max_staleness_days=MAX_STALENESS_DAYS)
    feats = compute_features(prices, rows=requests[POS].unique().sort().to_numpy())
    states = (
        requests.join(feats.drop(ENTITY, "date"), on=POS, how="left")
        .sort("as_of_date", ENTITY)
        .filter(pl.col("n_obs") >= 64)
    )
    return prices, states, dates


def ground_truth(
    universe: Universe, encoder: Encoder, *, forward: bool = False
) -> tuple[np.ndarray, pl.DataFrame, Truth]:
    """Every month-end state of a generated market (z-scores with nulls, the states frame)
    and its labelled subset. `forward` adds each state's forward maximum drawdown (`fwd_dd`,
    NaN near the end): the loss the generator dealt it."""
    market = generate(universe.entities, universe.days, universe.seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_market(market, Path(tmp))
        prices, states, _ = month_end_states(paths["prices"])
        if forward:
            own = states.with_columns(pl.col("last_date").alias(DATE))
            states = states.with_columns(
                pl.Series("fwd_dd", forward_drawdown(paths["prices"], own))
            )
    first, last = prices["date"].min(), prices["date"].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    z = encoder.zscores(states.select(FEATURE_NAMES))
    labels = labels_from_events(market.events, first, last)
    tagged = label_states(states.with_row_index("_state"), labels)
    types = np.array(
        [
            TYPES.index(t if label == "stress" and t is not None else "BASELINE")
            for t, label in zip(tagged["shock_type"], tagged["label"], strict=True)
        ]
    )
    return z, states, Truth(z=z[tagged["_state"].to_numpy()], tagged=tagged, types=types)


def inputs(z: np.ndarray, states: pl.DataFrame, covariance: np.ndarray) -> np.ndarray:
    """[z, market z, 1] of every state, nulls imputed, context = the date's median."""
    filled = impute(z, covariance)
    context, _ = market_context(states, filled, market=None)
    return np.hstack([filled, context, np.ones((len(z), 1))])


def scenario_inputs(encoder: Encoder, covariance: np.ndarray) -> tuple[np.ndarray, pl.DataFrame]:
    """[z, z, 1] of every scenario of the shipped library (its synthetic path): a scenario
    is a market-wide move, its own context."""
    library = load_library()
    feats = synthetic_features(library, encoder.baseline())
    z = impute(encoder.zscores(feats.select(FEATURE_NAMES)), covariance)
    table = library_frame(library)
    return np.hstack([z, z, np.ones((len(z), 1))]), table


def validation_figures(
    x: np.ndarray, truth: Truth, x_scen: np.ndarray, table: pl.DataFrame, weights: np.ndarray
) -> dict[str, float]:
    """The evaluate figures of weighted inputs on a labelled universe (joint vectors with
    the default branch weights)."""
    z_stab = normalise(x * weights)[0]
    z_scen = normalise(x_scen * weights)[0]
    high = (table["severity"] == "HIGH").to_numpy()
    res = joint_states(z_stab, z_scen, high, weights=DEFAULT_WEIGHTS, tau=DEFAULT_TAU)
    stressed = (truth.tagged["label"] == "stress").to_numpy()
    stress = np.flatnonzero(stressed)
    queries = stress[:: max(1, len(stress) // MAX_QUERIES)]
    figures = figures_of(
        normalise(res.vectors.astype(np.float64))[0],
        table["scenario_id"].to_numpy()[res.nearest],
        res.fragility,
        truth.tagged,
        table,
        queries,
    )
    # Within a date: do the entities in their own episode (blow-up, dry-up) outrank the rest?
    own = truth.tagged["own_label"].to_numpy() & stressed
    dates = truth.tagged["as_of_date"].to_numpy()
    ranking = cross_section(res.fragility, dates, own, np.isin(dates, np.unique(dates[own])))
    return {**figures, "cross_section_auc": float(ranking["mean_auc"])}


def _selection_score(figures: dict[str, float]) -> float:
    """What picks the penalty: the mean of the validation figures, each higher-is-better."""
    return statistics.fmean(
        [
            figures["state_auc"],
            figures["analog_precision_at_10"],
            figures["shock_type_accuracy"],
            1 - figures["calm_to_high"],
            figures["cross_section_auc"],
        ]
    )


def _record(
    train: tuple[Universe, ...],
    validation: Universe,
    counts: np.ndarray,
    *,
    hyper: dict[str, Any],
    constant: float,
    validation_figures: tuple[dict[str, float], dict[str, float], list[Any]],
    final_loss: float,
) -> dict[str, Any]:
    """What v2's manifest records of its fit: data, hyperparameters and figures."""
    figures, unfitted, trials = validation_figures
    return {
        "training_data": {
            "source": "stabfrag.synth.generate events (stabfrag.synth.labels_from_events)",
            "universes": [asdict(u) for u in train],
            "states": {TYPES[i]: int(n) for i, n in enumerate(counts) if n},
            "as_of": "month-ends from a year after each market's first day",
            "validation_universe": asdict(validation),
            "real_labels": "none",
        },
        "hyperparameters": {
            "penalties_tried": list(hyper["penalties"]),
            "penalty": hyper["penalty"],
            "tau_fit": hyper["tau_fit"],
            "constant_scale": round(constant, 6),
            "iterations": hyper["iters"],
            "solver": "Adam, learning rate 0.03, from the unfitted weights",
            "selection": "mean of validation AUC, precision@10, shock-type accuracy, "
            "1 - calm->HIGH and the within-date cross-section AUC",
        },
        "fitted_figures": {
            "validation": rounded(figures),
            "validation_unfitted_weights": rounded(unfitted),
            "validation_score_by_penalty": {str(t[1]): round(t[0], 4) for t in trials},
            "final_loss": round(final_loss, 6),
        },
    }


def fit_v2(
    model_dir: Path,
    *,
    train: tuple[Universe, ...] = (Universe(101, 400, 2520), Universe(102, 250, 2520)),
    validation: Universe = Universe(103, 300, 2520),
    penalties: tuple[float, ...] = (0.01, 0.1, 1.0),
    iters: int = 300,
    tau_fit: float = 0.1,
) -> dict[str, Any]:
    """Fit joint-stab-fragility-v2 on synthetic ground truth and write its artefacts."""
    # The calibration of the folder's own v1 (after `stabfrag calibrate`), else the shipped one.
    own = JOINT_V1 in joint_models(model_dir)
    v1 = load_models(model_dir if own else None, JOINT_V1).stab
    raw = [ground_truth(u, v1) for u in (*train, validation)]
    covariance = imputation_covariance(np.vstack([z for z, _, _ in raw[:-1]]))
    xs = [inputs(z, states, covariance) for z, states, _ in raw]
    truths = [t for _, _, t in raw]
    labelled = [x[t.tagged["_state"].to_numpy()] for x, t in zip(xs, truths, strict=True)]
    x_train, x_val = np.vstack(labelled[:-1]), labelled[-1]
    y_train = np.concatenate([t.types for t in truths[:-1]])
    x_scen, table = scenario_inputs(v1, covariance)
    scen_types = np.array([TYPES.index(t) for t in table["shock_type"]])
    constant = constant_scale(x_train, v1)
    base = input_weights(v1, np.zeros(17), constant)
    trials = []
    for lam in penalties:  # a few penalties, chosen on the validation universe
        fitted = fit_weights(
            x_train, y_train, x_scen, scen_types, base, lam=lam, tau=tau_fit, iters=iters
        )
        figures = validation_figures(
            x_val, truths[-1], x_scen, table, input_weights(v1, fitted.log_weights, constant)
        )
        trials.append((_selection_score(figures), lam, fitted, figures))
    _, lam, fitted, figures = max(trials, key=lambda t: (t[0], -t[1]))
    unfitted = validation_figures(x_val, truths[-1], x_scen, table, base)
    record = _record(
        train,
        validation,
        np.bincount(y_train, minlength=len(TYPES)),
        hyper={"penalties": penalties, "penalty": lam, "tau_fit": tau_fit, "iters": iters},
        constant=constant,
        validation_figures=(figures, unfitted, trials),
        final_loss=fitted.loss[-1],
    )
    write_v2(
        model_dir,
        v1,
        log_weights=fitted.log_weights,
        constant=constant,
        covariance=covariance,
        record=record,
    )
    return {"model_dir": str(model_dir), "model": STAB_V2, **record}
