"""A build's states on given dates, read and computed as the chunk builder does: for what
needs the states of dates that are not the chunk's (a historical episode's last day)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from stabfrag.asof.requests import state_requests, tick_series, windows_only
from stabfrag.config import BuildConfig
from stabfrag.features.plan import compute_features
from stabfrag.features.registry import LOOKBACK_ROWS
from stabfrag.ingest.prices import Validated, validate
from stabfrag.ingest.reasons import MAX_GAP_DAYS
from stabfrag.ingest.runs import entity_starts, history_starts
from stabfrag.ingest.ticks import SCALE_ROWS
from stabfrag.ingest.window import read_window
from stabfrag.schema import DATE, ENTITY, POS

# Valid rows an entity needs before an as-of date for its state to be read in full: the
# features' look-back and the bad-tick scale of its oldest row (else its whole history is read).
READ_ROWS = LOOKBACK_ROWS + SCALE_ROWS + 1


def features_on(config: BuildConfig, dates: list[dt.date], where: pl.Expr | None) -> pl.DataFrame:
    """Every state of `dates` (ascending) of the entities `where` selects (None: all), with
    its features, as a build of those dates reads and computes them."""
    return computed_states(config, read_for(config, dates, where), dates)


def read_for(config: BuildConfig, dates: list[dt.date], where: pl.Expr | None) -> pl.DataFrame:
    """The price rows a build of `dates` (ascending) reads, of the entities `where` selects."""
    return read_window(
        config.prices,
        first=dates[0],
        last=dates[-1],
        include_undated=False,
        min_rows=READ_ROWS,
        where=where,
    )


def computed_states(config: BuildConfig, raw: pl.DataFrame, dates: list[dt.date]) -> pl.DataFrame:
    """The states of `dates` with their features, from the rows `raw` (read_for)."""
    checked = validate(raw, min_prices=0, bad_tick=config.bad_tick)
    requests, _ = state_requests(
        checked.prices,
        dates,
        max_staleness_days=config.max_staleness_days,
        ticks=checked.ticks,
        starts=checked.starts,
    )
    return state_features(checked, requests)


def state_features(checked: Validated, requests: pl.DataFrame) -> pl.DataFrame:
    """Every requested state (state_requests) with its features, sorted by date and entity."""
    series, requests = tick_series(checked.prices, checked.ticks, requests, LOOKBACK_ROWS + 1)
    # (An open tick's series is appended as an entity of its own: new runs.)
    starts = (
        checked.starts
        if series is checked.prices
        else history_starts(
            entity_starts(series[ENTITY]), series[DATE].cast(pl.Int32).to_numpy(), MAX_GAP_DAYS
        )
    )
    series, requests, starts = windows_only(series, requests, starts)
    rows = requests[POS].unique().sort().to_numpy()
    feats = compute_features(series, rows=rows, starts=starts).drop(ENTITY, DATE)
    del series
    return requests.join(feats, on=POS, how="left").sort("as_of_date", ENTITY)
