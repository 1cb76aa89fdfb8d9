"""How much "close to a known bad region" means: validity figures on labelled periods.

Each figure is computed on the same labelled states three ways: the joint space, vol_21
alone, and the design note's original encoder (the 63-day window of close, volume and
log return, flattened and zero-padded to 384, compared by cosine similarity), which is
the encoder the platform used before. The baselines live here, not in the product path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.inputs import InputError, read_prices, validate
from stabfrag.linalg import matmul_rows, normalise
from stabfrag.scenarios import (
    SHOCK_TYPES,
    Baseline,
    load_library,
    synthesise_path,
    synthetic_features,
)
from stabfrag.schema import DATE, DIM, ENTITY, date_span
from stabfrag.sinks.parquet import partitions, read_table

LABELS = ("stress", "calm")
GAP_DAYS = 180  # analog neighbours closer in time than this are the same episode
MAX_QUERIES = 4000  # stress states used as analog queries (a seeded sample beyond that)
RAW_WINDOW = 63
EXPOSURE_WINDOW = 252  # trading days of returns behind an exposure correlation


class LabelError(Exception):
    """A labels file that cannot be used; one line."""


def read_labels(path: Path) -> pl.DataFrame:
    """start, end, label, shock_type (optional), entity_id (optional: empty = every entity)."""
    try:
        frame = pl.read_csv(path, comment_prefix="#", infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LabelError(f"{path}: cannot read labels ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("start", "end", "label") if c not in frame.columns]
    if missing:
        raise LabelError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in ("shock_type", ENTITY, "source"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(col))
    frame = frame.with_columns(
        pl.col("start").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
        pl.col("end").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
        pl.col("label").str.strip_chars().str.to_lowercase(),
        pl.col("shock_type").str.strip_chars().replace("", None),
        pl.col(ENTITY).str.strip_chars().replace("", None),
    )
    bad = frame.filter(pl.col("start").is_null() | pl.col("end").is_null())
    if bad.height:
        raise LabelError(f"{path}: a start or end is not a date (YYYY-MM-DD)")
    bad = frame.filter(pl.col("end") < pl.col("start"))
    if bad.height:
        raise LabelError(f"{path}: period {bad['start'][0]}..{bad['end'][0]} ends before it starts")
    bad = frame.filter(~pl.col("label").is_in(LABELS))
    if bad.height:
        raise LabelError(f"{path}: label '{bad['label'][0]}' is not stress or calm")
    bad = frame.filter(
        pl.col("shock_type").is_not_null() & ~pl.col("shock_type").is_in(SHOCK_TYPES)
    )
    if bad.height:
        raise LabelError(f"{path}: unknown shock type '{bad['shock_type'][0]}'")
    # Overlapping periods for the same entities would give a state two labels.
    srt = frame.with_columns(pl.col(ENTITY).fill_null("*").alias("_scope")).sort("_scope", "start")
    clash = srt.filter(
        (pl.col("_scope") == pl.col("_scope").shift(1))
        & (pl.col("start") <= pl.col("end").shift(1))
    )
    if clash.height:
        row = clash.row(0, named=True)
        raise LabelError(f"{path}: period starting {row['start']} overlaps the one before it")
    return frame.drop("_scope" if "_scope" in frame.columns else [])


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
    matched = (
        states.select(ENTITY, "as_of_date", pl.int_range(pl.len()).alias("_i"))
        .sort("as_of_date")
        .join_asof(
            frame.select(ENTITY, DATE, column).sort(DATE),
            left_on="as_of_date",
            right_on=DATE,
            by=ENTITY,
            strategy="backward",
            check_sortedness=False,
        )
        .sort("_i")
    )
    return matched[column]


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


def _raw_scenarios(library: tuple, baseline: Baseline) -> np.ndarray:  # type: ignore[type-arg]
    rows = []
    for sc in library:  # the library's few scenarios
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
    dates = partitions(out)
    if not dates:
        raise InputError(out, "no joint_embeddings partitions")
    joint = pl.concat([read_table(out, "joint_embeddings", d) for d in dates])
    feats = pl.concat(
        [read_table(out, "features", d).select("as_of_date", ENTITY, "vol_21") for d in dates]
    )
    scen_table = read_table(out, "scenarios", dates[-1])
    states = joint.filter(pl.col("kind") == "entity").join(
        feats, on=["as_of_date", ENTITY], how="left"
    )
    # Label each state by the period (for its entity, or for every entity) holding its date.
    lab = labels.select("start", "end", "label", "shock_type", ENTITY)
    everyone = lab.filter(pl.col(ENTITY).is_null()).drop(ENTITY).sort("start")
    tagged = (
        states.sort("as_of_date")
        .join_asof(
            everyone,
            left_on="as_of_date",
            right_on="start",
            strategy="backward",
            check_sortedness=False,
        )
        .with_columns(
            pl.when(pl.col("as_of_date") <= pl.col("end")).then(pl.col("label")).alias("label"),
            pl.when(pl.col("as_of_date") <= pl.col("end"))
            .then(pl.col("shock_type"))
            .alias("shock_type"),
        )
        .drop("start", "end")
    )
    own = lab.filter(pl.col(ENTITY).is_not_null())
    if own.height:
        hit = (
            tagged.select("as_of_date", ENTITY)
            .join(own, on=ENTITY)
            .filter(pl.col("as_of_date").is_between(pl.col("start"), pl.col("end")))
            .select(
                "as_of_date", ENTITY, pl.col("label").alias("_l"), pl.col("shock_type").alias("_s")
            )
            .unique(["as_of_date", ENTITY], keep="first")
        )
        tagged = (
            tagged.join(hit, on=["as_of_date", ENTITY], how="left")
            .with_columns(
                pl.coalesce("_l", "label").alias("label"),
                pl.when(pl.col("_l").is_not_null())
                .then(pl.col("_s"))
                .otherwise(pl.col("shock_type"))
                .alias("shock_type"),
            )
            .drop("_l", "_s")
        )
    tagged = tagged.filter(pl.col("label").is_not_null()).sort("as_of_date", ENTITY)
    if tagged.height == 0:
        raise LabelError(f"{labels_path}: no built state falls in a labelled period")
    universe: dict[str, Any] = {"labelled_states": tagged.height}
    if exposed_to is not None and prices is not None:
        corr = exposure(prices, tagged, exposed_to)
        tagged = tagged.filter(pl.Series(corr >= min_corr))
        universe.update(
            exposed_to=exposed_to,
            min_corr=min_corr,
            window_days=EXPOSURE_WINDOW,
            kept=tagged.height,
            no_full_window=int(np.isnan(corr).sum()),
        )
        if tagged.height == 0:
            raise LabelError(f"no labelled state has a correlation of {min_corr} with {exposed_to}")
    stress = (tagged["label"] == "stress").to_numpy()
    calm = ~stress
    high = (scen_table["severity"] == "HIGH").to_numpy()
    scen_ids = scen_table["scenario_id"].to_numpy()
    scen_type = dict(zip(scen_table["scenario_id"], scen_table["shock_type"], strict=True))
    scen_vectors = joint.filter(
        (pl.col("kind") == "scenario") & (pl.col("as_of_date") == dates[-1])
    )
    spaces = [
        Space(
            "joint",
            normalise(tagged["vector"].to_numpy().astype(np.float64))[0],
            normalise(scen_vectors["vector"].to_numpy().astype(np.float64))[0],
            False,
        ),
    ]
    # The joint space's own answers are stored with each state (against that date's library).
    stored = {
        "nearest": tagged["nearest_scenario_id"].to_numpy(),
        "fragility": tagged["fragility"].fill_null(np.nan).to_numpy(),
    }
    library = load_library()
    from stabfrag.encoders import load_models

    baseline = load_models().scen.baseline()
    scen_vol = synthetic_features(library, baseline).select("scenario_id", "vol_21")
    order = pl.DataFrame({"scenario_id": scen_ids})
    vol_scen = order.join(scen_vol, on="scenario_id", how="left")["vol_21"].to_numpy()
    spaces.append(
        Space("vol_21 alone", tagged["vol_21"].fill_null(np.nan).to_numpy(), vol_scen, True)
    )
    if prices is not None:
        by_id = {s.id: s for s in library}
        spaces.append(
            Space(
                "original encoder",
                _raw_windows(prices, tagged),
                _raw_scenarios(tuple(by_id[i] for i in scen_ids), baseline),
                False,
            )
        )
    rng = np.random.default_rng(seed)
    queries = np.flatnonzero(stress)
    if len(queries) > MAX_QUERIES:
        queries = np.sort(rng.choice(queries, MAX_QUERIES, replace=False))
    as_of = tagged["as_of_date"].to_numpy()
    typed = tagged["shock_type"].to_numpy()
    has_type = np.array([t is not None for t in typed])
    figures: dict[str, dict[str, float]] = {}
    for space in spaces:  # three embeddings
        joint_space = space.name == "joint"
        nearest = stored["nearest"] if joint_space else scen_ids[_nearest(space)]
        fragility = stored["fragility"] if joint_space else _fragility(space, high)
        near_high = np.isin(nearest, scen_ids[high])
        near_type = np.array([scen_type[s] for s in nearest])
        figures[space.name] = {
            "state_auc": auc(fragility, stress),
            "analog_precision_at_10": precision_at_k(
                space.states, as_of, stress, queries, distance=space.distance
            ),
            "calm_to_high": float(near_high[calm].mean()) if calm.any() else float("nan"),
            "shock_type_accuracy": float((near_type[has_type] == typed[has_type]).mean())
            if has_type.any()
            else float("nan"),
        }
    return {
        "out": str(out),
        "labels": str(labels_path),
        "universe": universe,
        "states": {
            "stress": int(stress.sum()),
            "calm": int(calm.sum()),
            "with_shock_type": int(has_type.sum()),
            "analog_queries": int(len(queries)),
        },
        "analog_base_rate": float(stress.mean()),
        "figures": figures,
    }
