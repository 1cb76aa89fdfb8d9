"""Which rows make which states: the (entity, as-of) requests of a chunk of dates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from stabfrag.asof.join import as_of_join
from stabfrag.features.plan import unique_rows
from stabfrag.features.registry import LOOKBACK_ROWS
from stabfrag.ingest.reasons import MAX_GAP_DAYS, MIN_PRICES, entity_rule
from stabfrag.ingest.runs import entity_starts, kept_starts, run_lengths
from stabfrag.ingest.window import LOOKBACK_DAYS
from stabfrag.schema import DATE, ENTITY, POS


def last_rows(
    prices: pl.DataFrame, dates: list[dt.date], *, starts: np.ndarray | None = None
) -> pl.DataFrame:
    """Per (as-of date, entity of `prices`), in that order: the entity's last row dated on
    or before the date and at most LOOKBACK_DAYS before it (`_pos`, `last_date`, and
    `n_obs`, its observation number; nulls where there is none).

    `prices` is sorted by (entity_id, date), so (entity, date) keys are sorted too: each
    request is one binary search, with no join and no sort of the rows. `starts`, each
    entity's first row, is found from the ids when not given.
    """
    ids = prices[ENTITY]
    if starts is None:
        starts = entity_starts(ids)
    lengths = run_lengths(starts, prices.height)
    days = prices[DATE].cast(pl.Int32).to_numpy()
    wanted = pl.Series(dates, dtype=pl.Date).cast(pl.Int32).to_numpy().astype(np.int64)
    present = [a for a in (days, wanted) if len(a)]
    low = min((int(a.min()) for a in present), default=0)
    span = max((int(a.max()) for a in present), default=0) - low + 1
    n_ent, n_dates = len(starts), len(wanted)
    # The key of a row: its entity's rank * span + its day, ascending down the frame.
    keys = np.repeat(np.arange(n_ent, dtype=np.int64) * span - low, lengths)
    keys += days
    # Searched in key order (entity, then date), so each search starts near the last one
    # in memory; the answers are then laid out by date, then entity.
    queries = (np.arange(n_ent)[:, None] * span + (wanted - low)[None, :]).ravel()
    pos = (np.searchsorted(keys, queries, side="right") - 1).reshape(n_ent, n_dates).T.ravel()
    ent = np.tile(np.arange(n_ent), n_dates)
    day = np.repeat(wanted, n_ent)
    safe = np.maximum(pos, 0)
    # No row of the entity on or before the day: the search lands in an earlier entity.
    found = (pos >= starts[ent]) & (days[safe] >= day - LOOKBACK_DAYS) if n_ent else pos >= 0
    at = pl.Series("_at", np.where(found, safe, -1)).replace(-1, None)
    owners = ids.gather(starts)
    frame = pl.DataFrame(
        {
            ENTITY: owners.gather(ent),
            "as_of_date": pl.Series(day, dtype=pl.Int32).cast(pl.Date),
            POS: at.cast(pl.Int64),
            "last_date": prices[DATE].gather(at),
            "n_obs": (at - pl.Series(starts).gather(pl.Series(ent)).cast(pl.Int64) + 1),
        }
    )
    # A run that continues its entity's history after a gap (history_starts) is asked
    # too: per (date, entity), the run with the newest row is the state's history.
    after_gap = (owners == owners.shift(1)).fill_null(False).to_numpy()
    if not after_gap.any():
        return frame.with_columns(pl.lit(False).alias("_after_gap"))
    return (
        frame.with_columns(pl.Series("_after_gap", after_gap[ent]))
        .sort("as_of_date", ENTITY, POS, nulls_last=False)
        .unique(["as_of_date", ENTITY], keep="last", maintain_order=True)
    )


def state_requests(
    prices: pl.DataFrame,
    dates: list[dt.date],
    *,
    max_staleness_days: int,
    ticks: pl.DataFrame | None = None,
    starts: np.ndarray | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per (entity, as-of date): the entity's last valid row on or before the date
    (`starts`: each entity's first row of `prices`, when known).

    Returns (requests for states, entity rejects). The universe of a date is every entity
    with a valid price in its look-back window. A bad tick not yet known on the as-of date
    (`ticks`, see Validated.ticks) is the state's last row, as the data of that evening
    showed it: such a request has `_tick` set (its date) and no `_pos` yet.
    """
    matched = _pending_ticks(last_rows(prices, dates, starts=starts), ticks).filter(
        pl.col("last_date").is_not_null()
    )
    reason, detail = entity_rule(
        pl.col("n_obs"),
        pl.col("last_date"),
        as_of=pl.col("as_of_date"),
        max_staleness_days=max_staleness_days,
    )
    # Too short a history because a gap restarted it says so (it had more before the gap).
    gap = pl.col("_after_gap") & (reason == "insufficient_history")
    matched = matched.with_columns(
        pl.when(gap).then(pl.lit("history_gap")).otherwise(reason).alias("reason"),
        pl.when(gap)
        .then(
            pl.format(
                "{} valid prices since a gap of more than {} days in its history, at least {} "
                "needed",
                pl.col("n_obs"),
                pl.lit(MAX_GAP_DAYS),
                pl.lit(MIN_PRICES),
            )
        )
        .otherwise(detail)
        .alias("detail"),
    ).sort("as_of_date", ENTITY)
    rejects = matched.filter(pl.col("reason").is_not_null()).select(
        "as_of_date", ENTITY, pl.col("last_date").alias(DATE), "reason", "detail"
    )
    # n_obs of a state: the prices of its window (window_start to date), at most what the
    # look-back reads, so it does not depend on how far back a chunk's read went.
    requests = matched.filter(pl.col("reason").is_null()).with_columns(
        pl.col("n_obs").clip(upper_bound=LOOKBACK_ROWS + 1)
    )
    return requests.drop("reason", "detail", "_after_gap"), rejects


def empty_entities(
    row_rejects: pl.DataFrame, judged: pl.DataFrame, dates: list[dt.date]
) -> pl.DataFrame:
    """Entity rejects `no_valid_rows`: per as-of date, each entity with rows in its look-back
    window that were all rejected (so it is counted in, and out, on that date as validate
    counts it). `judged` holds the (entity_id, as_of_date) pairs already given a state or a
    reject; `row_rejects` are the chunk's row rejects (REJECTS_SCHEMA)."""
    rows = row_rejects.filter(
        pl.col(DATE).is_not_null() & (pl.col("reason") != "bad_entity_id")
    ).select(ENTITY, DATE)
    if rows.height == 0:
        return pl.DataFrame(
            schema={"as_of_date": pl.Date, ENTITY: pl.String, DATE: pl.Date, **_REASON}
        )
    grid = rows.select(pl.col(ENTITY).unique()).join(
        pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}), how="cross"
    )
    matched = as_of_join(grid, rows.unique(), max_days=LOOKBACK_DAYS).filter(
        pl.col(DATE).is_not_null()
    )
    return (
        matched.join(judged, on=[ENTITY, "as_of_date"], how="anti")
        .with_columns(
            pl.lit("no_valid_rows").alias("reason"),
            pl.lit(f"every row in the {LOOKBACK_DAYS} days to the as-of date was rejected").alias(
                "detail"
            ),
        )
        .select("as_of_date", ENTITY, DATE, "reason", "detail")
    )


_REASON = {"reason": pl.String, "detail": pl.String}


def _pending_ticks(matched: pl.DataFrame, ticks: pl.DataFrame | None) -> pl.DataFrame:
    """Point each (entity, as-of) whose newest row is a bad tick not yet known at the tick."""
    if ticks is None or ticks.height == 0:
        return matched.with_columns(pl.lit(None, pl.Date).alias("_tick"))
    pending = as_of_join(
        matched, ticks.select(ENTITY, pl.col(DATE).alias("_tick"), "known_on"), right_on="_tick"
    )
    # known_on is the next row's date, so a tick unknown on the as-of date is its newest row.
    open_tick = pl.col("_tick").is_not_null() & (pl.col("known_on") > pl.col("as_of_date"))
    return pending.with_columns(
        pl.when(open_tick).then(None).otherwise(pl.col(POS)).alias(POS),
        pl.when(open_tick).then(pl.col("_tick")).otherwise(pl.col("last_date")).alias("last_date"),
        pl.when(open_tick)
        .then(pl.col("n_obs").fill_null(0) + 1)
        .otherwise(pl.col("n_obs"))
        .alias("n_obs"),
        pl.when(open_tick).then(pl.col("_tick")).alias("_tick"),
    ).drop("known_on")


def tick_series(
    prices: pl.DataFrame, ticks: pl.DataFrame, requests: pl.DataFrame, lookback_rows: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(prices with one series per open tick appended, requests pointing at their last row).

    The series of an open tick is the entity's last `lookback_rows` valid rows before it and
    the tick itself, under an id no entity can have (control characters are rejected), so
    the feature plan treats it as an entity of its own.
    """
    wanted = requests.filter(pl.col("_tick").is_not_null()).select(ENTITY, "_tick").unique()
    if wanted.height == 0:
        return prices, requests
    variant = pl.format("{}\x1f{}", pl.col(ENTITY), pl.col("_tick")).alias("_variant")
    history = (
        prices.join(wanted, on=ENTITY, maintain_order="left")
        .filter(pl.col(DATE) < pl.col("_tick"))
        .filter(pl.int_range(pl.len(), 0, -1).over(ENTITY, "_tick") <= lookback_rows)
    )
    spikes = ticks.join(wanted, left_on=[ENTITY, DATE], right_on=[ENTITY, "_tick"]).with_columns(
        pl.col(DATE).alias("_tick")
    )
    series = (
        pl.concat([history, spikes.select(history.columns)])
        .with_columns(variant)
        .sort("_variant", DATE)
    )
    ends = series.with_row_index("_i").filter(
        pl.col("_variant") != pl.col("_variant").shift(-1).fill_null("")
    )
    positions = ends.select(
        ENTITY, "_tick", (pl.col("_i").cast(pl.Int64) + prices.height).alias("_tick_pos")
    )
    appended = series.drop(ENTITY).rename({"_variant": ENTITY}).select(prices.columns)
    extended = pl.concat([prices, appended])
    pointed = (
        requests.join(positions, on=[ENTITY, "_tick"], how="left", maintain_order="left")
        .with_columns(pl.coalesce(POS, "_tick_pos").alias(POS))
        .drop("_tick_pos")
    )
    return extended, pointed


KEEP_ALL_SHARE = 0.8  # windows_only copies the series only when it drops a fifth or more


def windows_only(
    series: pl.DataFrame, requests: pl.DataFrame, starts: np.ndarray
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """The rows of `series` that some requested state's window reads, the requests pointed
    at their new positions, and the entities' first rows among them (`starts`: in
    `series`).

    A state's features read its own row and the LOOKBACK_ROWS before it, nothing older
    (kernels.py: a value depends only on its own window), so an entity's rows before its
    first requested row's window are dropped: a `build --as-of` computes features on one
    window per entity, not on the whole look-back read.
    """
    if series.height == 0:
        return series, requests, starts
    ends = np.r_[starts[1:], series.height]
    wanted = unique_rows(requests[POS].drop_nulls().to_numpy())
    # Per entity asked for (wanted is sorted): its rows from its first wanted row's window
    # to its end. Counted before any row-long array is made: a month-end chunk keeps all.
    ent = np.searchsorted(starts, wanted, side="right") - 1
    first = np.flatnonzero(np.r_[True, ent[1:] != ent[:-1]]) if len(ent) else ent
    asked = ent[first]
    begin = np.maximum(starts[asked], wanted[first] - LOOKBACK_ROWS)
    if (ends[asked] - begin).sum() > KEEP_ALL_SHARE * series.height:
        return series, requests, starts  # a copy would cost more than it saves
    edges = np.bincount(begin, minlength=series.height + 1) - np.bincount(
        ends[asked], minlength=series.height + 1
    )
    keep = np.cumsum(edges[:-1]) > 0  # the kept spans are disjoint: one per entity
    moved = pl.Series(POS, np.cumsum(keep) - 1).gather(requests[POS])
    return series.filter(pl.Series(keep)), requests.with_columns(moved), kept_starts(starts, keep)
