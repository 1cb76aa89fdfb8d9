"""Which, out of sample: do the generator's shock-type signatures name real episodes?

    python bench/which_real.py [--trailing N | --calibrated] ROLES REAL_BUILD LABELS \
        SYN_DIR:BUILD_DIR [...]

ROLES names the real series that play the five factors, in the order equity, rates,
credit, fx, commodity (for example SPY,TLT,HYG,UUP,GLD). REAL_BUILD is a weekly
backfill of the real prices; LABELS its label file. Each shock type's centroid is the
mean point-in-time signature (five factors + universe median, each date scaled by the
last 52 weekly dates up to it; see which_lead.py) of its episode dates in the generated
panels (BASELINE: their calm dates). Every labelled real week is named by the nearest
centroid; printed per labelled period: weeks, share named as labelled, the type named
most. `--trailing 0` scales each set of series by its own pooled quartiles;
`--calibrated` by the generated panels' pooled quartiles, a constant the real data
plays no part in (what a fitted model would carry).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
from which_lead import (
    FACTORS,
    Constants,
    both,
    calibrate,
    factor_rows,
    median_rows,
    trailing_option,
)

TRAILING = 52  # weekly dates, a year, unless --trailing says otherwise
Scaling = tuple[Constants, Constants] | None


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def features(built: Path) -> pl.DataFrame:
    return pl.read_parquet(built / "features" / "*" / "*.parquet", hive_partitioning=True)


def labelled(signature: pl.DataFrame, labels: Path) -> pl.DataFrame:
    frame = pl.read_csv(labels, comment_prefix="#", try_parse_dates=True)
    return signature.join_where(
        frame, pl.col("as_of_date") >= pl.col("start"), pl.col("as_of_date") <= pl.col("end")
    ).with_columns(
        pl.when(pl.col("label") == "calm")
        .then(pl.lit("BASELINE"))
        .otherwise("shock_type")
        .alias("type")
    )


def centroids(
    pairs: list[tuple[Path, Path]], trailing: int, constants: Scaling
) -> tuple[list[str], list[str], np.ndarray]:
    """(signature columns, shock types, unit centroid per type) from the generated panels."""
    parts, columns = [], []
    for syn, built in pairs:
        signature = both(features(built), trailing, constants)
        columns = [c for c in signature.columns if c != "as_of_date"]
        parts.append(labelled(signature, syn / "labels.csv").filter(pl.col("entity_id").is_null()))
    dates = pl.concat(parts)
    kinds = sorted(set(dates["type"].drop_nulls()))
    means = [dates.filter(pl.col("type") == k).select(columns).to_numpy().mean(0) for k in kinds]
    return columns, kinds, unit(np.stack([unit(m) for m in means]))


def main() -> None:
    trailing, args = trailing_option(sys.argv[1:])
    trailing = TRAILING if trailing is None else trailing
    calibrated = "--calibrated" in args
    roles, real, labels, *rest = [a for a in args if a != "--calibrated"]
    pairs = [tuple(Path(p) for p in arg.split(":")) for arg in rest]
    constants: Scaling = None
    if calibrated:  # one quartile set per feature, from the generated panels only
        panels = [features(built) for _, built in pairs]
        constants = (
            calibrate([factor_rows(f) for f in panels]),
            calibrate([median_rows(f) for f in panels]),
        )
    columns, kinds, centres = centroids(pairs, trailing, constants)  # type: ignore[arg-type]
    ids = dict(zip(roles.split(","), FACTORS, strict=True))  # each real series plays one
    real_features = features(Path(real)).with_columns(pl.col("entity_id").replace(ids))
    signature = both(real_features, trailing, constants)
    signature = signature.select(
        "as_of_date",
        *[pl.col(c) if c in signature.columns else pl.lit(0.0).alias(c) for c in columns],
    )
    weeks = labelled(signature, Path(labels))
    guess = np.array(kinds)[(unit(weeks.select(columns).to_numpy()) @ centres.T).argmax(axis=1)]
    table = (
        weeks.with_columns(pl.Series("named", guess))
        .group_by("start", "label", "type", "source")
        .agg(
            pl.len().alias("weeks"),
            (pl.col("named") == pl.col("type")).mean().alias("right"),
            pl.col("named").mode().sort().first().alias("mostly"),
        )
        .sort("start")
    )
    with pl.Config(tbl_rows=50, fmt_str_lengths=44, tbl_width_chars=160):
        print(table.drop("start"))


if __name__ == "__main__":
    sys.exit(main())
