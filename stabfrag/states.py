"""Which rows make which states: the look-back window read, the (entity, as-of) requests,
the as-of calendar, and the fingerprint of what a partition was made from."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl

from stabfrag import __version__
from stabfrag.config import BuildConfig
from stabfrag.features import LOOKBACK_ROWS
from stabfrag.inputs import MIN_PRICES, ROW, read_prices, row_reason, scan_prices, window_filter
from stabfrag.scenarios import Scenario
from stabfrag.schema import DATE, ENTITY

# Calendar days read before an as-of date: 295 observations of a daily series with room
# for holidays. Entities that trade less often get their whole history (see read_window).
LOOKBACK_DAYS = 730


def file_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):  # file blocks, not data rows
            h.update(block)
    return h.hexdigest()


def fingerprint(
    config: BuildConfig, library: tuple[Scenario, ...], weights: dict[str, float]
) -> str:
    """What a partition was made from: input bytes, scenario library and settings."""
    payload = {
        "prices": file_hash(config.prices),
        "entities": file_hash(config.entities),
        "profiles": file_hash(config.profiles),
        "scenarios": [repr(s) for s in library],
        "weights": weights,
        "max_staleness_days": config.max_staleness_days,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def read_window(
    path: Path, *, first: dt.date, last: dt.date, include_undated: bool
) -> pl.DataFrame:
    """Rows dated in [first - LOOKBACK_DAYS, last]; whole history for entities that need it.

    An entity with fewer than 295 valid prices in the window before `first` but older rows
    outside it would get truncated windows: its full history up to `last` is read instead.
    """
    start = first - dt.timedelta(days=LOOKBACK_DAYS)
    raw = read_prices(path, where=window_filter(start, last, include_undated=include_undated))
    counts = (
        raw.filter(row_reason().is_null() & (pl.col(DATE) <= first))
        .group_by(ENTITY)
        .agg(pl.col(DATE).n_unique().alias("n"))
    )
    seen = raw.select(pl.col(ENTITY).drop_nulls().unique())
    short = seen.join(counts.filter(pl.col("n") > LOOKBACK_ROWS), on=ENTITY, how="anti")
    if short.height == 0:
        return raw
    older = (
        scan_prices(path)
        .filter((pl.col(DATE) < start) & pl.col(ENTITY).is_in(short[ENTITY].implode()))
        .collect()
    )
    return pl.concat([raw, older]).sort(ROW) if older.height else raw


def state_requests(
    prices: pl.DataFrame, dates: list[dt.date], *, max_staleness_days: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per (entity, as-of date): the entity's last valid row on or before the date.

    Returns (requests for states, entity rejects). The universe of a date is every entity
    with a valid price in its look-back window.
    """
    indexed = prices.with_row_index("_pos").select(
        pl.col("_pos").cast(pl.Int64),
        ENTITY,
        pl.col(DATE).alias("last_date"),
        (pl.int_range(pl.len()).over(ENTITY) + 1).alias("n_obs"),
    )
    grid = (
        prices.select(pl.col(ENTITY).unique())
        .join(pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}), how="cross")
        .sort("as_of_date")
    )
    matched = grid.join_asof(
        indexed.sort("last_date"),
        left_on="as_of_date",
        right_on="last_date",
        by=ENTITY,
        strategy="backward",
        check_sortedness=False,
    ).filter(
        pl.col("last_date").is_not_null()
        & (pl.col("last_date") >= pl.col("as_of_date") - pl.duration(days=LOOKBACK_DAYS))
    )
    stale_cut = pl.col("as_of_date") - pl.duration(days=max_staleness_days)
    reason = (
        pl.when(pl.col("n_obs") < MIN_PRICES)
        .then(pl.lit("insufficient_history"))
        .when(pl.col("last_date") < stale_cut)
        .then(pl.lit("stale"))
    )
    matched = matched.with_columns(reason.alias("reason")).sort("as_of_date", ENTITY)
    detail = (
        pl.when(pl.col("reason") == "stale")
        .then(
            pl.format(
                "last price on {}, more than {} days before the as-of date",
                pl.col("last_date"),
                pl.lit(max_staleness_days),
            )
        )
        .otherwise(
            pl.format(
                "{} valid prices by the as-of date, at least {} needed",
                pl.col("n_obs"),
                pl.lit(MIN_PRICES),
            )
        )
    )
    rejects = matched.filter(pl.col("reason").is_not_null()).select(
        "as_of_date", ENTITY, pl.col("last_date").alias(DATE), "reason", detail.alias("detail")
    )
    requests = matched.filter(pl.col("reason").is_null()).drop("reason")
    return requests, rejects


def as_of_dates(path: Path, start: dt.date, end: dt.date, freq: str) -> list[dt.date]:
    """Trading dates in the data between start and end: every one, or the last of each week
    or month that the data has."""
    dates = (
        scan_prices(path)
        .filter(pl.col(DATE).is_between(start, end))
        .select(pl.col(DATE).unique())
        .collect()
        .sort(DATE)
    )
    if freq == "day":
        picked = dates
    else:
        key = pl.col(DATE).dt.truncate("1w" if freq == "week" else "1mo").alias("period")
        picked = dates.group_by(key).agg(pl.col(DATE).max()).sort(DATE)
    return picked[DATE].to_list()
