"""Validity figures: AUC, analog precision, nearest-scenario checks, per episode, per date.

Every figure that cannot be computed is NaN here (null in JSON) with the reason beside it
in the report; none is ever a silent zero.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from stabfrag.model.linalg import matmul_rows

GAP_DAYS = 180  # analog neighbours closer in time than this are the same episode
MAX_QUERIES = 4000  # stress states used as analog queries (a seeded sample beyond that)


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
    away in time. `vectors` are unit rows (cosine), or one column compared by distance.
    Queries without any such neighbour are left out (NaN when none has one)."""
    return precision_counts(
        vectors, dates, stress, queries, k=k, gap_days=gap_days, distance=distance
    )[0]


def precision_counts(
    vectors: np.ndarray,
    dates: np.ndarray,
    stress: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = 10,
    gap_days: int = GAP_DAYS,
    distance: bool = False,
) -> tuple[float, int]:
    """(precision@k over the queries that have a neighbour, queries that have none)."""
    days = dates.astype("datetime64[D]").astype(np.int64)
    shares, lonely = [], 0
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
        found = valid.sum(axis=1)
        lonely += int((found == 0).sum())
        shares.append(hits[found > 0] / found[found > 0])
    values = np.concatenate(shares) if shares else np.zeros(0)
    return (float(values.mean()) if len(values) else float("nan")), lonely


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


def similarities(states: np.ndarray, scenarios: np.ndarray, *, distance: bool) -> np.ndarray:
    """(n states, n scenarios) similarity: cosine of unit rows, or minus the distance of
    one score."""
    if distance:
        return -np.abs(states[:, None] - scenarios[None, :])
    return matmul_rows(states, scenarios.T)


def per_episode(
    states: np.ndarray,
    fragility: np.ndarray,
    tagged: pl.DataFrame,
    *,
    distance: bool = False,
    max_queries: int = 500,
) -> dict[str, dict[str, float | int]]:
    """For each labelled stress episode: its states, the AUC of its states against every
    calm state, and the analog precision@10 of its states as queries."""
    stress = (tagged["label"] == "stress").to_numpy()
    calm = ~stress
    episodes = tagged["episode"].to_numpy()
    as_of = tagged["as_of_date"].to_numpy()
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted({e for e in episodes[stress] if e is not None}):
        mine = stress & (episodes == name)
        keep = mine | calm
        queries = np.flatnonzero(mine)[:: max(1, int(mine.sum()) // max_queries)]
        out[name] = {
            "states": int(mine.sum()),
            "state_auc": auc(fragility[keep], mine[keep]),
            "analog_precision_at_10": precision_at_k(
                states, as_of, stress, queries, distance=distance
            ),
        }
    return out


def episode_match(
    states: np.ndarray,
    scenarios: np.ndarray,
    table: pl.DataFrame,
    tagged: pl.DataFrame,
    *,
    distance: bool = False,
) -> dict[str, dict[str, float | int]]:
    """For the stress states of each labelled episode that names its historical scenario:
    the share whose nearest historical scenario is that one, and the share with it in the
    top 3. Scored against the full library of the newest date (a retrospective check of
    each historical scenario's vector); states of episodes whose scenario the library does
    not hold are left out."""
    historical = (table["kind"] == "historical").to_numpy()
    ids = table["scenario_id"].to_numpy()[historical]
    named = tagged["scenario_id"].to_numpy()
    stress = (tagged["label"] == "stress").to_numpy()
    out: dict[str, dict[str, float | int]] = {}
    for sid in sorted({s for s in named[stress] if s is not None}):
        mine = np.flatnonzero(stress & (named == sid))
        if sid not in ids or len(mine) == 0:
            continue
        sims = similarities(states[mine], scenarios[historical], distance=distance)
        rank = (sims > sims[:, list(ids).index(sid)][:, None]).sum(axis=1)
        out[sid] = {
            "states": len(mine),
            "top1": float((rank == 0).mean()),
            "top3": float((rank < 3).mean()),
        }
    return out


def pooled(matches: dict[str, dict[str, float | int]]) -> dict[str, float | int]:
    """Episode match over all its states (each state counts once)."""
    n = sum(int(m["states"]) for m in matches.values())
    if n == 0:
        return {"states": 0, "top1": float("nan"), "top3": float("nan")}
    return {
        "states": n,
        "top1": sum(float(m["top1"]) * int(m["states"]) for m in matches.values()) / n,
        "top3": sum(float(m["top3"]) * int(m["states"]) for m in matches.values()) / n,
    }


def cross_section(
    fragility: np.ndarray, dates: np.ndarray, positive: np.ndarray, eligible: np.ndarray
) -> dict[str, float | int]:
    """Mean over dates of the AUC of fragility between positive and other eligible states of
    the same date: does the space still rank entities when the whole market moves?"""
    aucs = []
    for day in np.unique(dates[eligible]):
        on = eligible & (dates == day)
        if positive[on].any() and (~positive[on]).any():
            aucs.append(auc(fragility[on], positive[on]))
    return {"dates": len(aucs), "mean_auc": float(np.mean(aucs)) if aucs else float("nan")}


def why_unavailable(tagged: pl.DataFrame, queries: int, lonely: int) -> dict[str, str]:
    """Why a figure cannot be computed on these labelled states, figure by figure."""
    stress = (tagged["label"] == "stress").to_numpy()
    why: dict[str, str] = {}
    if not (~stress).any():
        why["state_auc"] = "no calm state is labelled: nothing to tell stress from"
        why["calm_to_high"] = "no calm state is labelled"
    if not stress.any():
        why["state_auc"] = "no stress state is labelled"
        why["analog_precision_at_10"] = "no stress state is labelled: no query"
    elif queries and lonely == queries:
        why["analog_precision_at_10"] = f"no query has a neighbour more than {GAP_DAYS} days away"
    if not tagged.filter(pl.col("label") == "stress")["shock_type"].is_not_null().any():
        why["shock_type_accuracy"] = "no stress state has a shock type in the labels"
    return why
