"""How much "close to a known bad region" means: validity figures on labelled periods.

Each figure is computed on the same labelled states three ways: the joint space, vol_21
alone, and the design note's original encoder (the 63-day window of close, volume and
log return, flattened and zero-padded to 384, compared by cosine similarity), which is
the encoder the platform used before. The baselines live here, not in the product path.
The scenario library and models are the ones the build used, as its manifest records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.labels import label_states, read_labels
from stabfrag.errors import InputError, LabelError
from stabfrag.ingest.prices import read_prices, validate
from stabfrag.ingest.window import as_of_join
from stabfrag.model.bundle import JOINT_PREFIX, Models, load_models
from stabfrag.model.linalg import matmul_rows, normalise
from stabfrag.scenarios.library import Scenario, load_library
from stabfrag.scenarios.paths import Baseline, synthesise_path, synthetic_features
from stabfrag.schema import DATE, DIM, ENTITY, date_span
from stabfrag.sinks.dataset import partitions, read_manifest, read_table

GAP_DAYS = 180  # analog neighbours closer in time than this are the same episode
MAX_QUERIES = 4000  # stress states used as analog queries (a seeded sample beyond that)
RAW_WINDOW = 63
EXPOSURE_WINDOW = 252  # trading days of returns behind an exposure correlation


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC: the chance a positive outscores a negative (ties count half)."""
    ok = ~np.isnan(scores)
    s, y = scores[ok], positive[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pl.Series(s).rank("average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_k(
    vectors: np.ndarray,
    dates: np.ndarray,
    stress: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = 10,
    gap_days: int = GAP_DAYS,
    distance: bool = False,
) -> float:
    """Mean share of stress states among each query's k nearest states more than gap_days
    away in time. `vectors` are unit rows (cosine), or one column compared by distance."""
    days = dates.astype("datetime64[D]").astype(np.int64)
    shares = []
    for lo in range(0, len(queries), 256):  # blocks of queries: bounded (256 x n) similarity
        q = queries[lo : lo + 256]
        if distance:
            sims = -np.abs(vectors[q][:, None] - vectors[None, :])
        else:
            sims = matmul_rows(vectors[q], vectors.T)
        far = np.abs(days[q][:, None] - days[None, :]) >= gap_days
        sims = np.where(far & ~np.isnan(sims), sims, -np.inf)
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        valid = np.take_along_axis(sims, top, axis=1) > -np.inf
        hits = (stress[top] & valid).sum(axis=1)
        shares.append(hits / np.maximum(valid.sum(axis=1), 1))
    return float(np.concatenate(shares).mean()) if shares else float("nan")


@dataclass(frozen=True)
class Space:
    """One way of embedding states: vectors (or one score) plus scenario rows to compare."""

    name: str
    states: np.ndarray
    scenarios: np.ndarray
    distance: bool  # compare by |difference| (a single score) rather than cosine


def _nearest(space: Space) -> np.ndarray:
    if space.distance:
        return np.nanargmin(np.abs(space.states[:, None] - space.scenarios[None, :]), axis=1)
    return np.argmax(matmul_rows(space.states, space.scenarios.T), axis=1)


def _fragility(space: Space, high: np.ndarray) -> np.ndarray:
    if space.distance:
        return space.states  # vol_21 itself: higher is more fragile
    return matmul_rows(space.states, space.scenarios[high].T).max(axis=1)


def _valid_prices(prices: Path, states: pl.DataFrame, days_before: int) -> pl.DataFrame:
    """Valid prices from `days_before` calendar days before the first state to the last,
    sorted by entity and date, with the log return `_r` (null on an entity's first row)."""
    first, last = date_span(states["as_of_date"])
    raw = read_prices(
        prices,
        where=pl.col(DATE).is_between(first - dt.timedelta(days=days_before), last),
    )
    return validate(raw, min_prices=0).prices.with_columns(
        (pl.col("close") / pl.col("close").shift(1)).log().over(ENTITY).alias("_r")
    )


def _latest(states: pl.DataFrame, frame: pl.DataFrame, column: str) -> pl.Series:
    """`column` at each state's entity's last row dated on or before the state's date, in
    the order of `states` (null where the entity has no such row)."""
    return as_of_join(states.select(ENTITY, "as_of_date"), frame.select(ENTITY, DATE, column))[
        column
    ]


def _raw_windows(prices: Path, states: pl.DataFrame) -> np.ndarray:
    """The original encoder: last 63 (close, volume, log return), flattened, zero-padded."""
    clean = _valid_prices(prices, states, 200).with_row_index("_pos")
    pos = _latest(states, clean, "_pos").fill_null(0).cast(pl.Int64).to_numpy()
    idx = np.clip(pos[:, None] + np.arange(-RAW_WINDOW + 1, 1), 0, None)
    cols = [clean[c].fill_null(0.0).to_numpy() for c in ("close", "volume", "_r")]
    flat = np.concatenate([c[idx] for c in cols], axis=1)
    out = np.zeros((len(states), DIM))
    out[:, : flat.shape[1]] = flat
    return normalise(out)[0]


def exposure(prices: Path, states: pl.DataFrame, market: str) -> np.ndarray:
    """Each state's correlation with `market`: daily log returns over the last 252 days both
    traded, up to the state's date (NaN without 252 such days). Point in time, like the
    states: it says which entities a market-wide label is about on that date."""
    returns = _valid_prices(prices, states, EXPOSURE_WINDOW * 2).drop_nulls("_r")
    if returns.filter(pl.col(ENTITY) == market).height == 0:
        raise LabelError(f"{prices}: the market entity '{market}' has no valid prices")
    paired = (
        returns.join(
            returns.filter(pl.col(ENTITY) == market).select(DATE, pl.col("_r").alias("_m")),
            on=DATE,
        )
        .sort(ENTITY, DATE)
        .with_columns(
            pl.rolling_corr("_r", "_m", window_size=EXPOSURE_WINDOW).over(ENTITY).alias("_corr")
        )
    )
    return _latest(states, paired, "_corr").fill_nan(None).fill_null(np.nan).to_numpy()


def _raw_scenarios(library: tuple[Scenario, ...], baseline: Baseline) -> np.ndarray:
    rows = []
    for sc in library:
        path = synthesise_path(sc, baseline).tail(RAW_WINDOW)
        r = np.log(
            path["close"].to_numpy()
            / np.concatenate([[path["close"][0]], path["close"].to_numpy()[:-1]])
        )
        v = np.zeros(DIM)
        flat = np.concatenate([path["close"].to_numpy(), path["volume"].fill_null(0).to_numpy(), r])
        v[: len(flat)] = flat
        rows.append(v)
    return normalise(np.array(rows))[0]


@dataclass(frozen=True)
class Built:
    """What evaluate reads of a built dataset: states, scenario rows, library and models."""

    states: pl.DataFrame  # entity rows of every date, with vol_21
    scenario_table: pl.DataFrame  # the newest date's scenarios table
    scenario_vectors: np.ndarray  # the newest date's scenario rows (unit, float64)
    library: tuple[Scenario, ...]
    models: Models
    built_with: dict[str, Any]


def read_built(out: Path) -> Built:
    """Read every partition, and reload the scenario library and models the build used (its
    manifest names them; a build that named none used the shipped ones)."""
    dates = partitions(out)
    if not dates:
        raise InputError(out, "no joint_embeddings partitions")
    joint = pl.concat([read_table(out, "joint_embeddings", d) for d in dates])
    feats = pl.concat(
        [read_table(out, "features", d).select("as_of_date", ENTITY, "vol_21") for d in dates]
    )
    manifest = read_manifest(out, dates[-1]) or {}
    model_dir, library_dir = manifest.get("model_dir"), manifest.get("scenario_library")
    joint_ids = [m for m in manifest.get("models", {}) if m.startswith(JOINT_PREFIX)]
    model = manifest.get("model") or (joint_ids[0] if joint_ids else None)
    models = load_models(None if model_dir is None else Path(model_dir), model)
    if manifest.get("models") and manifest["models"] != models.hashes():
        raise LabelError(
            f"{out}: the models at {model_dir or 'the shipped folder'} are not the ones the "
            "build used; rebuild, or restore them"
        )
    library = load_library(None if library_dir is None else Path(library_dir))
    table = read_table(out, "scenarios", dates[-1])
    if set(table["scenario_id"]) - {s.id for s in library}:
        raise LabelError(
            f"{out}: the scenario library at {library_dir or 'the shipped folder'} no longer "
            "holds every scenario the build used"
        )
    scen = joint.filter((pl.col("kind") == "scenario") & (pl.col("as_of_date") == dates[-1]))
    return Built(
        states=joint.filter(pl.col("kind") == "entity").join(
            feats, on=["as_of_date", ENTITY], how="left"
        ),
        scenario_table=table,
        scenario_vectors=normalise(scen["vector"].to_numpy().astype(np.float64))[0],
        library=library,
        models=models,
        built_with={
            "scenario_library": library_dir or "shipped",
            "model_dir": model_dir or "shipped",
            "models": models.hashes(),
        },
    )


def _exposed(
    tagged: pl.DataFrame, prices: Path, exposed_to: str, min_corr: float
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The states whose entity moved with `exposed_to`, and how many that kept."""
    corr = exposure(prices, tagged, exposed_to)
    kept = tagged.filter(pl.Series(corr >= min_corr))
    if kept.height == 0:
        raise LabelError(f"no labelled state has a correlation of {min_corr} with {exposed_to}")
    return kept, {
        "exposed_to": exposed_to,
        "min_corr": min_corr,
        "window_days": EXPOSURE_WINDOW,
        "kept": kept.height,
        "no_full_window": int(np.isnan(corr).sum()),
    }


def _spaces(built: Built, tagged: pl.DataFrame, prices: Path | None) -> list[Space]:
    """The joint space and its baselines, on the same states and scenarios."""
    scen_ids = built.scenario_table["scenario_id"].to_numpy()
    baseline = built.models.scen.baseline()
    scen_vol = synthetic_features(built.library, baseline).select("scenario_id", "vol_21")
    vol_scen = (
        pl.DataFrame({"scenario_id": scen_ids})
        .join(scen_vol, on="scenario_id", how="left")["vol_21"]
        .to_numpy()
    )
    spaces = [
        Space(
            "joint",
            normalise(tagged["vector"].to_numpy().astype(np.float64))[0],
            built.scenario_vectors,
            False,
        ),
        Space("vol_21 alone", tagged["vol_21"].fill_null(np.nan).to_numpy(), vol_scen, True),
    ]
    if prices is not None:
        by_id = {s.id: s for s in built.library}
        spaces.append(
            Space(
                "original encoder",
                _raw_windows(prices, tagged),
                _raw_scenarios(tuple(by_id[i] for i in scen_ids), baseline),
                False,
            )
        )
    return spaces


def figures_of(
    states: np.ndarray,
    nearest: np.ndarray,
    fragility: np.ndarray,
    tagged: pl.DataFrame,
    table: pl.DataFrame,
    queries: np.ndarray,
    *,
    distance: bool = False,
) -> dict[str, float]:
    """State AUC, analog precision@10, calm->HIGH and shock-type accuracy of one space,
    from its state vectors (or score), nearest scenario ids and fragility."""
    stress = (tagged["label"] == "stress").to_numpy()
    calm = ~stress
    scen_ids = table["scenario_id"].to_numpy()
    high = (table["severity"] == "HIGH").to_numpy()
    scen_type = dict(zip(table["scenario_id"], table["shock_type"], strict=True))
    typed = tagged["shock_type"].to_numpy()
    has_type = np.array([t is not None for t in typed])
    near_high = np.isin(nearest, scen_ids[high])
    near_type = np.array([scen_type.get(s) for s in nearest])
    as_of = tagged["as_of_date"].to_numpy()
    return {
        "state_auc": auc(fragility, stress),
        "analog_precision_at_10": precision_at_k(states, as_of, stress, queries, distance=distance),
        "calm_to_high": float(near_high[calm].mean()) if calm.any() else float("nan"),
        "shock_type_accuracy": float((near_type[has_type] == typed[has_type]).mean())
        if has_type.any()
        else float("nan"),
    }


def _figures(
    space: Space, tagged: pl.DataFrame, table: pl.DataFrame, queries: np.ndarray
) -> dict[str, float]:
    scen_ids = table["scenario_id"].to_numpy()
    if space.name == "joint":
        # The joint space's own answers are stored with each state (that date's library).
        nearest = tagged["nearest_scenario_id"].to_numpy()
        fragility = tagged["fragility"].fill_null(np.nan).to_numpy()
    else:
        high = (table["severity"] == "HIGH").to_numpy()
        nearest = scen_ids[_nearest(space)]
        fragility = _fragility(space, high)
    return figures_of(
        space.states, nearest, fragility, tagged, table, queries, distance=space.distance
    )


def evaluate(
    out: Path,
    labels_path: Path,
    *,
    prices: Path | None = None,
    exposed_to: str | None = None,
    min_corr: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Every figure, with its baselines, on the states of a built dataset.

    `exposed_to` keeps only the states whose entity moved with that market entity (return
    correlation at least `min_corr`, see `exposure`): a label for a market's stress
    describes the instruments exposed to it, not the havens that rally in its crashes.
    """
    if exposed_to is not None and prices is None:
        raise LabelError("--exposed-to needs --prices to measure each entity's exposure")
    labels = read_labels(labels_path)
    built = read_built(out)
    tagged = label_states(built.states, labels)
    if tagged.height == 0:
        raise LabelError(f"{labels_path}: no built state falls in a labelled period")
    universe: dict[str, Any] = {"labelled_states": tagged.height}
    if exposed_to is not None and prices is not None:
        tagged, kept = _exposed(tagged, prices, exposed_to, min_corr)
        universe.update(kept)
    stress = (tagged["label"] == "stress").to_numpy()
    queries = np.flatnonzero(stress)
    if len(queries) > MAX_QUERIES:
        rng = np.random.default_rng(seed)
        queries = np.sort(rng.choice(queries, MAX_QUERIES, replace=False))
    figures = {
        space.name: _figures(space, tagged, built.scenario_table, queries)
        for space in _spaces(built, tagged, prices)
    }
    return {
        "out": str(out),
        "labels": str(labels_path),
        "built_with": built.built_with,
        "universe": universe,
        "states": {
            "stress": int(stress.sum()),
            "calm": int((~stress).sum()),
            "with_shock_type": int(tagged["shock_type"].is_not_null().sum()),
            "analog_queries": int(len(queries)),
        },
        "analog_base_rate": float(stress.mean()),
        "figures": figures,
    }
