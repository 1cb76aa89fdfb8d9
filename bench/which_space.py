"""Which, in the joint space: what a factor block would do to the nearest scenario.

    python bench/which_space.py [--trailing N] SYN_DIR:BUILD_DIR SYN_DIR:BUILD_DIR [...]

Each pair is a `stabfrag generate --factors` panel and a backfill of it with the default
model. A state gets a block beside its joint vector: its date's signature (the five
factor series and the universe median, robust-scaled over time; see which_lead.py), unit
length, times a weight w. A scenario gets, in the same block, the mean signature of its
shock type's episode dates in the *other* panels (BASELINE: their calm dates): what a
fitted scenario factor shock would have to look like. Each panel is scored with
centroids it did not make. Printed per w: shock-type accuracy (market-wide stress states'
nearest scenario, mean over types) and the state AUC of fragility (cosine to the nearest
HIGH scenario; market-wide stress against calm states), against the scenarios of the
newest date, as evaluate's episode match takes them; and calm->HIGH, the share of calm
states whose nearest scenario is a HIGH one; and the library's same-type nearest share.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
from which_lead import both, trailing_option

from stabfrag.analysis.metrics import auc, library_separation

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def panel(syn: Path, built: Path, trailing: int | None) -> dict[str, object]:
    """A panel's labelled states, their date signatures, and its newest scenarios."""
    read = lambda t: pl.read_parquet(built / t / "*" / "*.parquet", hive_partitioning=True)  # noqa: E731
    joint, scen = read("joint_embeddings"), read("scenarios")
    signature = both(read("features"), trailing)
    labels = pl.read_csv(syn / "labels.csv", try_parse_dates=True).filter(
        pl.col("entity_id").is_null()
    )
    dated = (
        joint.select("as_of_date")
        .unique()
        .join_where(
            labels, pl.col("as_of_date") >= pl.col("start"), pl.col("as_of_date") <= pl.col("end")
        )
    )
    states = (
        joint.filter(pl.col("kind") == "entity")
        .join(dated.select("as_of_date", "label", "shock_type"), on="as_of_date")
        .join(signature, on="as_of_date")
    )
    sig_cols = [c for c in signature.columns if c != "as_of_date"]
    last = joint["as_of_date"].max()
    scenarios = (
        joint.filter(pl.col("kind") == "scenario", pl.col("as_of_date") == last)
        .join(scen.filter(pl.col("as_of_date") == last), on=["as_of_date", "scenario_id"])
        .sort("scenario_id")
    )
    dates = dated.join(signature, on="as_of_date")
    centres = {
        t: unit(g.select(sig_cols).to_numpy().mean(axis=0))
        for (t,), g in dates.with_columns(
            pl.when(pl.col("label") == "calm")
            .then(pl.lit("BASELINE"))
            .otherwise("shock_type")
            .alias("t")
        ).group_by("t")
    }
    return {
        "v": states["vector"].to_numpy().astype(np.float64),
        "sig": unit(states.select(sig_cols).to_numpy().astype(np.float64)),
        "label": states["label"].to_numpy(),
        "type": states["shock_type"].to_numpy(),
        "u": scenarios["vector"].to_numpy().astype(np.float64),
        "scen_type": scenarios["shock_type"].to_numpy(),
        "high": (scenarios["severity"] == "HIGH").to_numpy(),
        "centres": centres,
    }


def score(p: dict, centres: dict[str, np.ndarray], w: float) -> tuple[float, float, float, float]:
    dim = len(next(iter(centres.values())))
    block = np.stack([centres.get(t, np.zeros(dim)) for t in p["scen_type"]])
    states = unit(np.hstack([p["v"], w * p["sig"]]))
    scens = unit(np.hstack([p["u"], w * block]))
    sims = states @ scens.T
    nearest = p["scen_type"][sims.argmax(axis=1)]
    stress = p["label"] == "stress"
    per = [np.mean(nearest[stress & (p["type"] == t)] == t) for t in np.unique(p["type"][stress])]
    fragility = sims[:, p["high"]].max(axis=1)
    calm_to_high = float(np.mean(p["high"][sims.argmax(axis=1)][~stress]))
    same = library_separation(scens, p["scen_type"], distance=False)["same_type_nearest"]
    return float(np.mean(per)), auc(fragility, stress), calm_to_high, float(same)


def main() -> None:
    trailing, args = trailing_option(sys.argv[1:])
    panels = [panel(*(Path(x) for x in arg.split(":")), trailing) for arg in args]
    for w in WEIGHTS:
        figures = []
        for i, p in enumerate(panels):
            others = [q["centres"] for j, q in enumerate(panels) if j != i]
            keys = set.intersection(*(set(c) for c in others))
            centres = {k: unit(np.mean([c[k] for c in others], axis=0)) for k in keys}
            figures.append(score(p, centres, w))
        acc, area, calm, same = np.mean(figures, axis=0)
        print(
            f"w = {w:3.1f}: shock-type accuracy (mean over types) {acc:.3f}, "
            f"state AUC {area:.3f}, calm->HIGH {calm:.3f}, library same-type {same:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
