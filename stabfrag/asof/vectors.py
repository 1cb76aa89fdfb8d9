"""Vectors as of a date: the newest profile on or before each state's date."""

from __future__ import annotations

import numpy as np
import polars as pl

from stabfrag.asof.join import as_of_join
from stabfrag.schema import DIM, ENTITY


def profiles_at(
    states: pl.DataFrame, profiles: pl.DataFrame | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """The newest profile with as_of_date <= the state's date, per state (point in time).

    `states` has entity_id, issuer_id and as_of_date. Returns (vectors (n, 384), zeros
    where a state has none, or None when none has one; has_profile).
    """
    n = states.height
    if profiles is None or profiles.height == 0:
        return None, np.zeros(n, dtype=bool)
    key = ENTITY if profiles["key_column"][0] == ENTITY else "issuer_id"
    left = states.select(pl.col(key).alias("key"), pl.col("as_of_date").alias("_d"))
    right = profiles.select("key", pl.col("as_of_date").alias("_p"), "vector")
    joined = as_of_join(left, right, left_on="_d", right_on="_p", by="key")
    has = joined["vector"].is_not_null().to_numpy()
    if not has.any():  # no (n, 384) block of zeros for the joint step to add
        return None, has
    vectors = np.zeros((n, DIM), dtype=np.float32)
    vectors[has] = joined.filter(pl.col("vector").is_not_null())["vector"].to_numpy()
    return vectors, has
