"""Which: how well does a date's market signature name its shock type, out of episode?

    python bench/which_lead.py SYN_DIR:BUILD_DIR [SYN_DIR:BUILD_DIR ...]

Each pair is a panel made by `stabfrag generate --factors` (its labels.csv) and a
backfill of it (its features). A market-wide stress date's signature is a set of the
point-in-time features, robust-scaled over time: of the equity factor alone, of the
universe's cross-sectional median, of the five factor series, or of the factors and
the median together. Each episode's dates are named by the nearest (cosine) centroid of
the other episodes' dates of each shock type (leave one episode out, every panel
pooled); the figure is the share named right, averaged within each type and then over
types. This is the signal a joint model with factor context would have to keep.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.synth.shocks import FACTOR_IDS

FEATURES = (
    "vol_21",
    "vol_63",
    "ret_21",
    "ret_63",
    "dd_252",
    "max_dd_63",
    "vol_ratio_21_252",
    "worst_ret_63",
    "spread_chg_21",
    "volume_z_21_252",
)
FACTORS = list(FACTOR_IDS.values())
Signature = Callable[[pl.DataFrame], pl.DataFrame]


def robust(frame: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Each feature minus its median over time, over its interquartile range."""

    def over(e: pl.Expr) -> pl.Expr:
        return e.over(by) if by else e

    return frame.with_columns(
        (
            (pl.col(c) - over(pl.col(c).median()))
            / (over(pl.col(c).quantile(0.75)) - over(pl.col(c).quantile(0.25)) + 1e-9)
        )
        .fill_null(0)
        .fill_nan(0)
        .alias(c)
        for c in FEATURES
    )


def of_entities(ids: list[str]) -> Signature:
    def make(features: pl.DataFrame) -> pl.DataFrame:
        rows = features.filter(pl.col("entity_id").is_in(ids)).select(
            "as_of_date", "entity_id", *FEATURES
        )
        wide = robust(rows, "entity_id").pivot(
            on="entity_id", index="as_of_date", values=list(FEATURES), sort_columns=True
        )
        return wide.fill_null(0)

    return make


def universe_median(features: pl.DataFrame) -> pl.DataFrame:
    rows = features.filter(~pl.col("entity_id").is_in(FACTORS))
    return robust(rows.group_by("as_of_date").agg(pl.col(c).median() for c in FEATURES))


def both(features: pl.DataFrame) -> pl.DataFrame:
    return of_entities(FACTORS)(features).join(universe_median(features), on="as_of_date")


def stressed_dates(syn: Path, built: Path, signature: Signature) -> pl.DataFrame:
    features = pl.read_parquet(built / "features" / "*" / "*.parquet", hive_partitioning=True)
    labels = pl.read_csv(syn / "labels.csv", try_parse_dates=True).filter(
        pl.col("label") == "stress", pl.col("entity_id").is_null()
    )
    dates = features.select("as_of_date").unique()
    tagged = dates.join_where(
        labels, pl.col("as_of_date") >= pl.col("start"), pl.col("as_of_date") <= pl.col("end")
    ).select("as_of_date", "shock_type", pl.format("{}:{}", pl.lit(str(syn)), "source"))
    return tagged.rename({"literal": "episode"}).join(signature(features), on="as_of_date")


def named(tagged: pl.DataFrame) -> dict[str, list[float]]:
    """Per shock type, the share of each episode's dates named right (leave one out)."""
    x = tagged.drop("as_of_date", "shock_type", "episode").to_numpy().astype(float)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    types, episodes = tagged["shock_type"].to_numpy(), tagged["episode"].to_numpy()
    shares: dict[str, list[float]] = {}
    for episode in np.unique(episodes):  # a few dozen episodes, not rows
        mine = episodes == episode
        kinds = sorted(set(types[~mine]))
        centres = np.stack([x[~mine & (types == k)].mean(axis=0) for k in kinds])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        guess = np.array(kinds)[(x[mine] @ centres.T).argmax(axis=1)]
        shares.setdefault(str(types[mine][0]), []).append(float((guess == types[mine]).mean()))
    return shares


def main() -> None:
    pairs = [tuple(Path(p) for p in arg.split(":")) for arg in sys.argv[1:]]
    signatures: dict[str, Signature] = {
        "equity factor alone": of_entities(FACTORS[:1]),
        "universe median": universe_median,
        "five factors": of_entities(FACTORS),
        "five factors + median": both,
    }
    for name, signature in signatures.items():
        tagged = pl.concat(
            [stressed_dates(syn, built, signature) for syn, built in pairs], how="diagonal"
        ).fill_null(0)
        shares = named(tagged)
        per = {k: (round(float(np.mean(v)), 2), len(v)) for k, v in sorted(shares.items())}
        macro = np.mean([v[0] for v in per.values()])
        print(
            f"{name:24} macro {macro:.3f}  "
            + ", ".join(f"{k} {a} ({n})" for k, (a, n) in per.items())
        )


if __name__ == "__main__":
    sys.exit(main())
