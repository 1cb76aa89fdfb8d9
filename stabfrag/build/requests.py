"""Which rows make which states: (entity, as-of) requests, profiles taken point in time,
and the fingerprint of what a partition was made from."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import polars as pl

from stabfrag import __version__
from stabfrag.config import BuildConfig
from stabfrag.ingest.files import file_hash
from stabfrag.ingest.reasons import entity_rule
from stabfrag.ingest.window import LOOKBACK_DAYS, as_of_join
from stabfrag.scenarios.library import Scenario
from stabfrag.schema import DATE, DIM, ENTITY


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
        # Only when set, so a build without a market reference keeps its fingerprint.
        **({"market": config.market} if config.market else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
    matched = as_of_join(grid, indexed, right_on="last_date", max_days=LOOKBACK_DAYS).filter(
        pl.col("last_date").is_not_null()
    )
    reason, detail = entity_rule(
        pl.col("n_obs"),
        pl.col("last_date"),
        as_of=pl.col("as_of_date"),
        max_staleness_days=max_staleness_days,
    )
    matched = matched.with_columns(reason.alias("reason"), detail.alias("detail")).sort(
        "as_of_date", ENTITY
    )
    rejects = matched.filter(pl.col("reason").is_not_null()).select(
        "as_of_date", ENTITY, pl.col("last_date").alias(DATE), "reason", "detail"
    )
    requests = matched.filter(pl.col("reason").is_null()).drop("reason", "detail")
    return requests, rejects


def profiles_at(
    states: pl.DataFrame, profiles: pl.DataFrame | None
) -> tuple[np.ndarray, np.ndarray]:
    """The newest profile with as_of_date <= the state's date, per state (point in time).

    `states` has entity_id, issuer_id and as_of_date. Returns (vectors (n, 384), has_profile).
    """
    n = states.height
    if profiles is None or profiles.height == 0:
        return np.zeros((n, DIM), dtype=np.float32), np.zeros(n, dtype=bool)
    key = ENTITY if profiles["key_column"][0] == ENTITY else "issuer_id"
    left = states.select(pl.col(key).alias("key"), pl.col("as_of_date").alias("_d"))
    right = profiles.select("key", pl.col("as_of_date").alias("_p"), "vector")
    joined = as_of_join(left, right, left_on="_d", right_on="_p", by="key")
    has = joined["vector"].is_not_null().to_numpy()
    vectors = np.zeros((n, DIM), dtype=np.float32)
    if has.any():
        vectors[has] = joined.filter(pl.col("vector").is_not_null())["vector"].to_numpy()
    return vectors, has
