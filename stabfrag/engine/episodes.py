"""Each historical episode's market context: the context its last day had in this build.

A state's vector holds its market's state beside its own (the declared market's, or the
median of the date's states); a historical scenario's held only its reference's path
(EEM for China 2015, a bond fund for a rates shock), unlike the market the episode's
states sat in. A model whose manifest asks for it (EPISODE_CONTEXT) gives each historical
episode the context a build of its last day computes, so an episode is its market as its
states saw it: the name of *which* episode lives there (bench/README.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.config import BuildConfig
from stabfrag.engine.context_cache import Contexts, cache_file, keep, kept
from stabfrag.engine.states import computed_states, read_for
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.model.bundle import Models
from stabfrag.model.encode import market_context
from stabfrag.scenarios.library import Scenario
from stabfrag.schema import ENTITY


def episode_contexts(
    config: BuildConfig,
    models: Models,
    episodes: list[Scenario],
    *,
    cache: Path | None = None,
) -> dict[str, np.ndarray]:
    """scenario id -> the z-scores of the market context of its episode's last day, as a
    build of that day with `config`'s prices and market reads it (point in time: nothing
    after the day). Episodes whose last day has no context in this book are left out.
    `cache`: a folder where the contexts are kept between runs (context_cache)."""
    by_end: dict[dt.date, list[str]] = {}
    for s in episodes:  # a library's episodes, not data rows
        if s.episode_end is not None:
            by_end.setdefault(s.episode_end, []).append(s.id)
    # With a declared market only its states are read: its context needs nothing else.
    where = None if config.market is None else pl.col(ENTITY) == config.market
    out: dict[str, np.ndarray] = {}
    for ends in _reads(sorted(by_end)):  # a few reads, each of several episode ends
        for end, context in _contexts_on(config, models, ends, where, cache).items():
            if context is not None:
                out.update(dict.fromkeys(by_end[end], context))
    return out


def _contexts_on(
    config: BuildConfig,
    models: Models,
    ends: list[dt.date],
    where: pl.Expr | None,
    cache: Path | None,
) -> Contexts:
    """The market context of each day of `ends` (None: none that day), kept in `cache`
    under the digest of the rows read, or taken from it."""
    raw = read_for(config, ends, where)
    path = None if cache is None else cache_file(cache, config, models, ends, raw)
    found = None if path is None else kept(path, ends)
    if found is not None:
        return found
    states = computed_states(config, raw, ends)
    del raw
    found = dict.fromkeys(ends)
    if states.height:
        z = models.scen.standardised(states.select(FEATURE_NAMES))
        context, missing = market_context(states, z, market=config.market)
        firsts = states.with_row_index("_i").group_by("as_of_date").agg(pl.col("_i").first())
        for end, i in firsts.iter_rows():  # one row per episode end
            if not missing[i]:
                found[end] = context[i]
    if path is not None:
        keep(path, found)
    return found


# Episode ends within this span of a read's first share the read (a year of look-back is
# read before its first end anyway); a read never spans more, so its memory is bounded
# however many episodes a library holds.
SHARED_READ_DAYS = 366


def _reads(ends: list[dt.date]) -> list[list[dt.date]]:
    """The ends (ascending) in runs of at most SHARED_READ_DAYS from each run's first."""
    runs: list[list[dt.date]] = []
    for end in ends:  # a library's episode ends
        if runs and (end - runs[-1][0]).days <= SHARED_READ_DAYS:
            runs[-1].append(end)
        else:
            runs.append([end])
    return runs
