"""Who gets hurt: how well a score ranks, within each date, the entities about to fall.

The measure is the cross-sectional Spearman correlation (rank IC) of a state's score with
its entity's forward maximum drawdown over the next FORWARD_ROWS trading rows (the lowest
close of those rows against the state's close, negated: 0.25 is a 25 % fall), averaged
over the dates with at least MIN_ENTITIES such states; and the same over the dates before
a market-wide fall (the date's median forward drawdown above FALL). The forward drawdown
reads prices after the state's date on purpose: it is the outcome the score is judged on.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.ingest.prices import read_prices, validate
from stabfrag.schema import DATE, ENTITY

FORWARD_ROWS = 63
MIN_ENTITIES = 20
FALL = 0.10  # a market-wide fall: the date's median forward drawdown above 10 %
# Calendar days read past the newest state: FORWARD_ROWS trading rows with room for holidays.
FORWARD_DAYS = 120
DEFINITION = (
    f"on every built state (labelled or not): the mean over dates with >= {MIN_ENTITIES} "
    "states of the Spearman correlation of the score with the forward "
    f"{FORWARD_ROWS}-row maximum drawdown (1 - min close over the next {FORWARD_ROWS} rows "
    f"/ close); before_falls: dates whose median forward drawdown is above {FALL:.0%}"
)


def forward_drawdown(prices: Path, states: pl.DataFrame) -> np.ndarray:
    """Each state's forward maximum drawdown, in the order of `states` (entity_id and
    `date`, the state's own last price date); NaN where fewer than FORWARD_ROWS valid rows
    follow it."""
    first, last = states[DATE].min(), states[DATE].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    raw = read_prices(
        prices, where=pl.col(DATE).is_between(first, last + dt.timedelta(days=FORWARD_DAYS))
    )
    valid = validate(raw, min_prices=0).prices.sort(ENTITY, DATE)
    # The lowest close of rows t+1..t+N: a trailing minimum over the reversed series,
    # brought back and moved one row on.
    ahead = (
        pl.col("close")
        .reverse()
        .rolling_min(FORWARD_ROWS, min_samples=FORWARD_ROWS)
        .reverse()
        .shift(-1)
        .over(ENTITY)
    )
    dd = valid.select(ENTITY, DATE, (1 - ahead / pl.col("close")).alias("_fwd_dd"))
    joined = states.select(ENTITY, DATE).join(dd, on=[ENTITY, DATE], how="left")
    return joined["_fwd_dd"].fill_null(np.nan).to_numpy()


def _ranks(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs) of `values` within each group: Spearman's ranks."""
    frame = pl.DataFrame({"v": values, "g": groups})
    return frame.select(pl.col("v").rank("average").over("g"))["v"].to_numpy()


def rank_ic(score: np.ndarray, fwd: np.ndarray, dates: np.ndarray) -> pl.DataFrame:
    """Per date with at least MIN_ENTITIES states having both a score and a forward
    drawdown: the date, its states, its median forward drawdown and the rank IC."""
    ok = np.isfinite(score) & np.isfinite(fwd)
    frame = pl.DataFrame({"as_of_date": dates[ok], "score": score[ok], "fwd": fwd[ok]})
    groups = frame["as_of_date"].to_numpy()
    frame = frame.with_columns(
        pl.Series("rs", _ranks(frame["score"].to_numpy(), groups)),
        pl.Series("rf", _ranks(frame["fwd"].to_numpy(), groups)),
    )
    return (
        frame.group_by("as_of_date")
        .agg(
            pl.len().alias("states"),
            pl.col("fwd").median().alias("median_fwd_dd"),
            pl.corr("rs", "rf").alias("ic"),  # Pearson of the ranks: Spearman
        )
        .filter(pl.col("states") >= MIN_ENTITIES)
        .sort("as_of_date")
    )


def who_figures(by_date: pl.DataFrame) -> dict[str, float | int]:
    """The mean rank IC over all dates and over the dates before a market-wide fall."""
    ic = by_date.filter(pl.col("ic").is_not_nan())
    falls = ic.filter(pl.col("median_fwd_dd") > FALL)

    def mean(values: pl.Series) -> float:
        return float(np.mean(values.to_numpy())) if values.len() else float("nan")

    return {
        "dates": ic.height,
        "ic": mean(ic["ic"]),
        "fall_dates": falls.height,
        "ic_before_falls": mean(falls["ic"]),
    }
