"""Fit the robust calibration of the numeric encoders on a user's own history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.errors import InputError
from stabfrag.features.plan import compute_features
from stabfrag.ingest.files import file_hash
from stabfrag.ingest.prices import read_prices, validate, window_filter
from stabfrag.ingest.window import LOOKBACK_DAYS
from stabfrag.model.encoder import SCEN_MODEL_ID, STAB_MODEL_ID, fit_calibration, write_encoder
from stabfrag.model.joint import DEFAULT_TAU, DEFAULT_WEIGHTS, write_joint
from stabfrag.schema import DATE

MAX_ROWS = 2_000_000  # enough for stable medians; every k-th state beyond that


def calibrate(
    prices: Path,
    *,
    start: dt.date,
    end: dt.date,
    model_dir: Path,
    description: str = "user history",
    weights: dict[str, float] | None = None,
    tau: float = DEFAULT_TAU,
) -> dict[str, Any]:
    """Fit centre and scale on every state dated in [start, end]; write the three artefacts."""
    raw = read_prices(prices, where=window_filter(start - dt.timedelta(days=LOOKBACK_DAYS), end))
    clean = validate(raw, min_prices=0).prices
    in_range = np.flatnonzero(clean[DATE].is_between(start, end).to_numpy())
    if len(in_range) == 0:
        raise InputError(prices, f"no valid prices between {start} and {end}")
    step = max(1, len(in_range) // MAX_ROWS)
    feats = compute_features(clean, rows=in_range[::step])
    # Only states with a full 63-return window count, as only they can be built.
    feats = feats.filter(pl.col("n_obs") >= 64)
    if feats.height == 0:
        raise InputError(prices, "no entity has 64 prices in the calibration range")
    center, scale = fit_calibration(feats)
    info = {
        "fitted_on": description,
        "data_sha": file_hash(prices),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "states": feats.height,
        "entities": feats["entity_id"].n_unique(),
    }
    for model_id in (STAB_MODEL_ID, SCEN_MODEL_ID):
        # v1: the scenario encoder is a copy of the state encoder, projection included.
        write_encoder(
            model_dir,
            model_id,
            center=center,
            scale=scale,
            calibration=info,
            projection_seed=STAB_MODEL_ID,
        )
    write_joint(model_dir, weights=weights or dict(DEFAULT_WEIGHTS), tau=tau)
    return info
