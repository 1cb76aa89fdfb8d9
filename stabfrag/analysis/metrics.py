"""Validity figures: AUC, analog precision, nearest-scenario checks, per episode, per date.

Every figure that cannot be computed is NaN here (null in JSON) with the reason beside it
in the report; none is ever a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

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


QUERY_BLOCK = 128  # queries per similarity block: (128 x states) float32 at a time


@dataclass(frozen=True)
class Analogs:
    """Each query's k nearest states more than gap_days away in time: how many of them are
    stress states (`hits`) and how many there are (`found`, k or fewer). Computed once per
    space for every query any figure needs."""

    queries: np.ndarray
    hits: np.ndarray
    found: np.ndarray

    def precision(self, queries: np.ndarray) -> tuple[float, int]:
        """(mean share of stress among the neighbours of `queries` that have any, queries
        without a neighbour); NaN when none has one."""
        at = np.searchsorted(self.queries, queries)
        found, hits = self.found[at], self.hits[at]
        ok = found > 0
        share = float((hits[ok] / found[ok]).mean()) if ok.any() else float("nan")
        return share, int((~ok).sum())


def analogs(
    vectors: np.ndarray,
    dates: np.ndarray,
    stress: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = 10,
    gap_days: int = GAP_DAYS,
    distance: bool = False,
) -> Analogs:
    """The neighbour counts of `queries` (row indices). `vectors` are unit rows compared by
    cosine (in float32: a ranking, not a stored value), or one column compared by
    distance. A state with a missing value is nobody's neighbour and has none."""
    queries = np.unique(queries)
    days = dates.astype("datetime64[D]").astype(np.int64)
    # In date order, the states too close in time to a query are one run of columns.
    order = np.argsort(days, kind="stable")
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    days, hit = days[order], stress[order]
    flat = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[order])
    missing = ~np.isfinite(flat if distance else flat.sum(axis=1))
    flat[missing] = 0.0
    columns = np.arange(len(days))
    k = min(k, len(flat))
    hits = np.zeros(len(queries), dtype=np.int64)
    found = np.zeros(len(queries), dtype=np.int64)
    for lo in range(0, len(queries), QUERY_BLOCK):  # bounded (block x states) similarity
        q = where[queries[lo : lo + QUERY_BLOCK]]
        # Cosine: BLAS reads the transpose in place (no copy of the states).
        sims = -np.abs(flat[q][:, None] - flat[None, :]) if distance else flat[q] @ flat.T
        near_lo = np.searchsorted(days, days[q] - gap_days, side="right")
        near_hi = np.searchsorted(days, days[q] + gap_days, side="left")
        sims[(columns >= near_lo[:, None]) & (columns < near_hi[:, None])] = -np.inf
        if missing.any():
            sims[:, missing] = -np.inf
            sims[missing[q]] = -np.inf
        top = np.argpartition(sims, -k, axis=1)[:, -k:]
        valid = np.take_along_axis(sims, top, axis=1) > -np.inf
        hits[lo : lo + len(q)] = (hit[top] & valid).sum(axis=1)
        found[lo : lo + len(q)] = valid.sum(axis=1)
    return Analogs(queries, hits, found)


def figures_of(
    states: np.ndarray,
    nearest: np.ndarray,
    fragility: np.ndarray,
    tagged: pl.DataFrame,
    table: pl.DataFrame,
    queries: np.ndarray,
    *,
    distance: bool = False,
    found: Analogs | None = None,
) -> dict[str, float]:
    """State AUC, analog precision@10, calm->HIGH and shock-type accuracy of one space,
    from its state vectors (or score), nearest scenario ids and fragility; `found` holds the
    queries' neighbours when they are already counted."""
    stress = (tagged["label"] == "stress").to_numpy()
    if found is None:
        found = analogs(states, tagged["as_of_date"].to_numpy(), stress, queries, distance=distance)
    calm = ~stress
    scen_ids = table["scenario_id"].to_numpy()
    high = (table["severity"] == "HIGH").to_numpy()
    typed = tagged["shock_type"].to_numpy()
    has_type = tagged["shock_type"].is_not_null().to_numpy()
    near_high = np.isin(nearest, scen_ids[high])
    near_type = nearest_types(nearest, table).to_numpy()
    return {
        "state_auc": auc(fragility, stress),
        "analog_precision_at_10": found.precision(np.unique(queries))[0],
        "calm_to_high": float(near_high[calm].mean()) if calm.any() else float("nan"),
        "shock_type_accuracy": float((near_type[has_type] == typed[has_type]).mean())
        if has_type.any()
        else float("nan"),
    }


def nearest_types(nearest: np.ndarray, table: pl.DataFrame) -> pl.Series:
    """The shock type of each state's nearest scenario (null where the library lacks it)."""
    scen_type = dict(zip(table["scenario_id"], table["shock_type"], strict=True))
    return pl.Series(nearest, dtype=pl.String).replace_strict(
        scen_type, default=None, return_dtype=pl.String
    )


def shock_type_by_type(
    nearest: np.ndarray, tagged: pl.DataFrame, table: pl.DataFrame
) -> dict[str, float]:
    """For each labelled shock type, the share of its stress states whose nearest scenario
    has that type (a type with few states counts as much as one with many in the macro
    average)."""
    near_type = nearest_types(nearest, table)
    frame = pl.DataFrame({"typed": tagged["shock_type"], "near": near_type}).drop_nulls("typed")
    agg = frame.group_by("typed").agg((pl.col("near") == pl.col("typed")).mean().alias("acc"))
    return dict(agg.sort("typed").iter_rows())


NAMES_SHOWN = 3  # the most frequent names of an episode or a shock type, in text


def named_text(shares: dict[str, float]) -> str:
    """'A 0.57, B 0.30, C 0.13': the leading names of `shares` (as `shares` orders them)."""
    return ", ".join(f"{k} {v:.2f}" for k, v in list(shares.items())[:NAMES_SHOWN])


Rows = list[tuple[str, str]]


def named_rows(result: dict[str, Any], model: str) -> tuple[Rows, Rows]:
    """What `model` names, as evaluate's text and page show it: (each labelled episode
    with its states' count, their leading names) and (each labelled shock type, its)."""
    episodes = [
        (f"{sid} ({m['states']:,} states, {m['dates']} dates)", named_text(m["named_as"]))
        for sid, m in result["episode_match"][model].items()
        if "named_as" in m  # beside "all" and "macro"
    ]
    types = [(kind, named_text(s)) for kind, s in result["shock_types_named"][model].items()]
    return episodes, types


UNNAMED = "unnamed"  # a nearest scenario whose type the library does not give


def shock_types_named(
    nearest: np.ndarray, tagged: pl.DataFrame, table: pl.DataFrame
) -> dict[str, dict[str, float]]:
    """For each labelled shock type, the shares of the types its stress states' nearest
    scenarios have, the most frequent first: which type a missed one is taken for."""
    near = nearest_types(nearest, table).fill_null(UNNAMED).to_numpy()
    typed = tagged["shock_type"].to_numpy()
    has = tagged["shock_type"].is_not_null().to_numpy()
    return {str(kind): shares(near[has & (typed == kind)]) for kind in np.unique(typed[has])}


def similarities(states: np.ndarray, scenarios: np.ndarray, *, distance: bool) -> np.ndarray:
    """(n states, n scenarios) similarity: cosine of unit rows, or minus the distance of
    one score."""
    if distance:
        return -np.abs(states[:, None] - scenarios[None, :])
    return matmul_rows(states, scenarios.T)


def library_separation(
    scenarios: np.ndarray, shock_types: np.ndarray, *, distance: bool
) -> dict[str, float | int]:
    """The share of the library's scenarios whose nearest other scenario has the same shock
    type: does the space tell shock types apart, before any state is asked?"""
    n = len(shock_types)
    if n < 2:
        return {"scenarios": n, "same_type_nearest": float("nan")}
    sims = similarities(scenarios, scenarios, distance=distance)
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argmax(sims, axis=1)
    return {
        "scenarios": n,
        "same_type_nearest": float(np.mean(shock_types[nearest] == shock_types)),
    }


EPISODE_QUERIES = 500  # at most this many queries per episode (every n-th of its states)


def episode_queries(tagged: pl.DataFrame) -> dict[str, np.ndarray]:
    """Each labelled stress episode's states, and the analog queries taken from them."""
    stress = (tagged["label"] == "stress").to_numpy()
    episodes = tagged["episode"].to_numpy()
    out = {}
    for name in sorted({e for e in episodes[stress] if e is not None}):  # a few episodes
        mine = np.flatnonzero(stress & (episodes == name))
        out[name] = mine[:: max(1, len(mine) // EPISODE_QUERIES)]
    return out


def per_episode(
    states: np.ndarray,
    fragility: np.ndarray,
    tagged: pl.DataFrame,
    *,
    distance: bool = False,
    found: Analogs | None = None,
) -> dict[str, dict[str, float | int]]:
    """For each labelled stress episode: its states, the AUC of its states against every
    calm state, and the analog precision@10 of its states as queries."""
    stress = (tagged["label"] == "stress").to_numpy()
    calm = ~stress
    episodes = tagged["episode"].to_numpy()
    chosen = episode_queries(tagged)
    if found is None:
        every = np.concatenate([np.zeros(0, dtype=np.int64), *chosen.values()])
        found = analogs(states, tagged["as_of_date"].to_numpy(), stress, every, distance=distance)
    out: dict[str, dict[str, float | int]] = {}
    for name, queries in chosen.items():
        mine = stress & (episodes == name)
        keep = mine | calm
        out[name] = {
            "states": int(mine.sum()),
            "state_auc": auc(fragility[keep], mine[keep]),
            "analog_precision_at_10": found.precision(queries)[0],
        }
    return out


class Match(TypedDict):
    """One episode's match: its stress states and their dates (states of one date share
    their market, so the dates say how many draws a share rests on), the shares named it
    (top 1, top 3), and what they are named (the share of each nearest historical
    scenario)."""

    states: int
    dates: int
    top1: float
    top3: float
    named_as: dict[str, float]


def episode_match(
    states: np.ndarray,
    scenarios: np.ndarray,
    table: pl.DataFrame,
    tagged: pl.DataFrame,
    *,
    distance: bool = False,
) -> dict[str, Match]:
    """For the stress states of each labelled episode that names its historical scenario:
    the share whose nearest historical scenario is that one, and the share with it in the
    top 3. Scored against the full library of the newest date (a retrospective check of
    each historical scenario's vector); states of episodes whose scenario the library does
    not hold are left out."""
    historical = (table["kind"] == "historical").to_numpy()
    ids = table["scenario_id"].to_numpy()[historical]
    named = tagged["scenario_id"].to_numpy()
    stress = (tagged["label"] == "stress").to_numpy()
    out: dict[str, Match] = {}
    for sid in sorted({s for s in named[stress] if s is not None}):
        mine = np.flatnonzero(stress & (named == sid))
        if sid not in ids or len(mine) == 0:
            continue
        sims = similarities(states[mine], scenarios[historical], distance=distance)
        rank = (sims > sims[:, list(ids).index(sid)][:, None]).sum(axis=1)
        out[sid] = {
            "states": len(mine),
            "dates": tagged["as_of_date"].gather(mine).n_unique(),
            "top1": float((rank == 0).mean()),
            "top3": float((rank < 3).mean()),
            "named_as": shares(ids[sims.argmax(axis=1)]),
        }
    return out


def shares(names: np.ndarray) -> dict[str, float]:
    """The share of each distinct value of `names`, the most frequent first (ties by
    name): what a set of states is named."""
    values, counts = np.unique(names, return_counts=True)
    order = np.lexsort((values, -counts))
    return {str(values[i]): float(counts[i] / len(names)) for i in order}


def pooled(matches: dict[str, Match]) -> dict[str, float | int]:
    """Episode match over all its states (each state counts once)."""
    n = sum(int(m["states"]) for m in matches.values())
    if n == 0:
        return {"states": 0, "top1": float("nan"), "top3": float("nan")}
    return {
        "states": n,
        "top1": sum(float(m["top1"]) * int(m["states"]) for m in matches.values()) / n,
        "top3": sum(float(m["top3"]) * int(m["states"]) for m in matches.values()) / n,
    }


def macro(matches: dict[str, Match]) -> dict[str, float | int]:
    """Episode match averaged over episodes (each episode counts once, however many states
    it has: a long crisis does not hide the short ones)."""
    if not matches:
        return {"episodes": 0, "top1": float("nan"), "top3": float("nan")}
    return {
        "episodes": len(matches),
        "top1": float(np.mean([float(m["top1"]) for m in matches.values()])),
        "top3": float(np.mean([float(m["top3"]) for m in matches.values()])),
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
