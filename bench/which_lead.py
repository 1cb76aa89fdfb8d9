"""Which: how well does a date's market signature name its shock type, out of episode?

    python bench/which_lead.py [--trailing N] SYN_DIR:BUILD_DIR [SYN_DIR:BUILD_DIR ...]

Each pair is a panel made by `stabfrag generate --factors` (its labels.csv) and a
backfill of it (its features). A market-wide stress date's signature is a set of the
point-in-time features, robust-scaled over the whole history (or, with --trailing N,
over the last N dates up to each date, as a model would have to): of the equity factor alone, of the
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


Constants = dict[str, dict[float, float]]  # feature -> {quantile: value}, fixed
QUANTILES = (0.25, 0.5, 0.75)


def robust(
    frame: pl.DataFrame,
    by: str | None = None,
    trailing: int | None = None,
    constants: Constants | None = None,
) -> pl.DataFrame:
    """Each feature minus its median, over its interquartile range: over each series' whole
    history (retrospective); with `trailing` N > 0 over its last N dates up to each date
    (point in time, as a model must); with `trailing` 0, one median and range per feature
    for every series and date of the frame; with `constants`, given ones (a calibration
    made elsewhere: point in time, and no history needed)."""

    def over(e: pl.Expr) -> pl.Expr:
        return e.over(by) if by else e

    def stat(c: str, q: float) -> pl.Expr:
        if constants is not None:
            return pl.lit(constants[c][q])
        if trailing == 0:
            return pl.col(c).quantile(q)
        if trailing is None:
            return over(pl.col(c).quantile(q))
        window = {"window_size": trailing, "min_samples": trailing // 4}
        return over(pl.col(c).rolling_quantile(q, **window))

    return frame.sort("as_of_date").with_columns(
        ((pl.col(c) - stat(c, 0.5)) / (stat(c, 0.75) - stat(c, 0.25) + 1e-9))
        .fill_null(0)
        .fill_nan(0)
        .alias(c)
        for c in FEATURES
    )


def factor_rows(features: pl.DataFrame) -> pl.DataFrame:
    return features.filter(pl.col("entity_id").is_in(FACTORS)).select(
        "as_of_date", "entity_id", *FEATURES
    )


def median_rows(features: pl.DataFrame) -> pl.DataFrame:
    rows = features.filter(~pl.col("entity_id").is_in(FACTORS))
    return rows.group_by("as_of_date").agg(pl.col(c).median() for c in FEATURES)


def calibrate(frames: list[pl.DataFrame]) -> Constants:
    """The quartiles of each feature over the rows of every frame, pooled."""
    pooled = pl.concat([f.select(FEATURES) for f in frames])
    return {
        c: {q: float(pooled[c].drop_nans().quantile(q) or 0.0) for q in QUANTILES} for c in FEATURES
    }


def of_entities(
    ids: list[str], trailing: int | None = None, constants: Constants | None = None
) -> Signature:
    def make(features: pl.DataFrame) -> pl.DataFrame:
        rows = factor_rows(features).filter(pl.col("entity_id").is_in(ids))
        wide = robust(rows, "entity_id", trailing, constants).pivot(
            on="entity_id", index="as_of_date", values=list(FEATURES), sort_columns=True
        )
        return wide.fill_null(0)

    return make


def universe_median(
    features: pl.DataFrame, trailing: int | None = None, constants: Constants | None = None
) -> pl.DataFrame:
    return robust(median_rows(features), None, trailing, constants)


def both(
    features: pl.DataFrame,
    trailing: int | None = None,
    constants: tuple[Constants, Constants] | None = None,
) -> pl.DataFrame:
    """Five factors and the universe median (`constants`: of the factors, of the median)."""
    fc, mc = constants if constants is not None else (None, None)
    factors = of_entities(FACTORS, trailing, fc)(features)
    return factors.join(universe_median(features, trailing, mc), on="as_of_date")


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


def trailing_option(args: list[str]) -> tuple[int | None, list[str]]:
    """`--trailing N` (point-in-time scaling over the last N dates) and the other args."""
    if "--trailing" not in args:
        return None, args
    at = args.index("--trailing")
    return int(args[at + 1]), args[:at] + args[at + 2 :]


def main() -> None:
    trailing, args = trailing_option(sys.argv[1:])
    pairs = [tuple(Path(p) for p in arg.split(":")) for arg in args]
    signatures: dict[str, Signature] = {
        "equity factor alone": of_entities(FACTORS[:1], trailing),
        "universe median": lambda f: universe_median(f, trailing),
        "five factors": of_entities(FACTORS, trailing),
        "five factors + median": lambda f: both(f, trailing),
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
