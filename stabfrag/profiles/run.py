"""`stabfrag profiles build`: point-in-time profile vectors for every entity and date.

Writes into the output folder, each file atomically and the manifest last:
profiles.parquet (entity_id, as_of_date, vector, source: the format --profiles reads),
inputs.parquet (the traits and fundamentals each vector was made from), rejects.parquet
(prices and fundamentals rows refused, entity-dates without a profile, with reasons) and
_manifest.json (model, inputs, counts).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag import __version__
from stabfrag.asof.vectors import profiles_at
from stabfrag.atomic import write_atomic
from stabfrag.config import FUNDAMENTALS_STALENESS_DAYS, MAX_STALENESS_DAYS
from stabfrag.errors import InputError
from stabfrag.ingest.files import file_hash
from stabfrag.ingest.prices import Validated, read_prices, validate
from stabfrag.ingest.profiles import PROFILES_MANIFEST, read_vectors
from stabfrag.ingest.reasons import counts_by_reason
from stabfrag.model.bundle import load_models, shipped_models
from stabfrag.model.joint import PROFILE_MODEL_ID
from stabfrag.profiles.encoder import load_profile_encoder
from stabfrag.profiles.fundamentals import FIELD_NAMES, Fundamentals, read_fundamentals
from stabfrag.profiles.inputs import profile_inputs
from stabfrag.schema import DATE, ENTITY, VECTOR_TYPE


@dataclass(frozen=True)
class ProfileConfig:
    """What a profiles build reads."""

    prices: Path
    out: Path
    dates: tuple[dt.date, ...]
    fundamentals: Path | None = None
    text_vectors: Path | None = None
    market: str | None = None
    model_dir: Path | None = None
    model: str | None = None
    max_staleness_days: int = MAX_STALENESS_DAYS
    fundamentals_staleness_days: int = FUNDAMENTALS_STALENESS_DAYS


def _sources(inputs: pl.DataFrame, has_text: np.ndarray) -> pl.Series:
    """Which blocks each profile was made from."""
    fund = inputs.select(pl.any_horizontal(pl.col(FIELD_NAMES).is_not_null())).to_series()
    return (
        pl.DataFrame({"f": fund, "t": has_text})
        .select(
            pl.concat_str(
                pl.lit("behaviour"),
                pl.when(pl.col("f")).then(pl.lit("+fundamentals")).otherwise(pl.lit("")),
                pl.when(pl.col("t")).then(pl.lit("+text")).otherwise(pl.lit("")),
            )
        )
        .to_series()
        .alias("source")
    )


def _rejects(
    price_rejects: pl.DataFrame, fund_rejects: pl.DataFrame | None, skipped: pl.DataFrame
) -> pl.DataFrame:
    """One table: prices rows refused, fundamentals rows refused and entity-dates without a
    profile, each with its scope and reason."""
    prices = price_rejects.select(
        pl.lit("prices_row").alias("scope"),
        pl.lit(None, pl.UInt32).alias("source_row"),
        ENTITY,
        pl.col(DATE).cast(pl.String),
        pl.lit(None, pl.String).alias("field"),
        pl.lit(None, pl.String).alias("value"),
        "reason",
        "detail",
    )
    entity = skipped.select(
        pl.lit("entity").alias("scope"),
        pl.lit(None, pl.UInt32).alias("source_row"),
        ENTITY,
        pl.col("as_of_date").cast(pl.String).alias(DATE),
        pl.lit(None, pl.String).alias("field"),
        pl.lit(None, pl.String).alias("value"),
        "reason",
        "detail",
    )
    parts = [prices]
    if fund_rejects is not None:
        parts.append(fund_rejects.select(pl.lit("fundamentals_row").alias("scope"), pl.all()))
    return pl.concat([*parts, entity])


def _text_at(config: ProfileConfig, inputs: pl.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """The text vector of each profile input as of its date (float64), and which have one."""
    if config.text_vectors is None:
        return None, np.zeros(inputs.height, dtype=bool)
    vectors = read_vectors(config.text_vectors, "text")
    if vectors.height and vectors["key_column"][0] != ENTITY:
        raise InputError(config.text_vectors, "text vectors need an entity_id column")
    text32, has_text = profiles_at(inputs, vectors)
    return (None if text32 is None else text32.astype(np.float64)), has_text


def _summary(
    config: ProfileConfig,
    encoder: tuple[str, str],
    checked: Validated,
    fund: Fundamentals | None,
    made: dict[str, int],
    *,
    without_profile: pl.DataFrame,
    without_signal: int,
) -> dict[str, Any]:
    """What a profiles build reports: the encoder (sha256, stab basis), its inputs and the
    profiles it made."""
    sha256, stab_basis = encoder
    summary: dict[str, Any] = {
        "out": str(config.out),
        "model": PROFILE_MODEL_ID,
        "model_sha256": sha256,
        "stab_basis": stab_basis,
        "dates": len(config.dates),
        "first_date": min(config.dates).isoformat(),
        "last_date": max(config.dates).isoformat(),
        "market": config.market or "cross-sectional median",
        "prices": {
            "rows_in": checked.rows_in,
            "rows_kept": checked.prices.height,
            "rows_rejected": checked.rows_rejected,
            "rejects_by_reason": counts_by_reason(checked.rejects),
        },
        **made,
        "without_profile": counts_by_reason(without_profile),
        "without_signal": without_signal,
    }
    if fund is not None:
        summary["fundamentals"] = {
            "values_in": fund.rows_in,
            "values_used": fund.rows.height,
            "values_rejected": counts_by_reason(fund.rejects),
        }
    return summary


def _write(config: ProfileConfig, tables: dict[str, pl.DataFrame], summary: dict[str, Any]) -> None:
    """The tables, then the manifest last (with the inputs' hashes)."""
    config.out.mkdir(parents=True, exist_ok=True)
    write_atomic(config.out / "profiles.parquet", tables["profiles"].write_parquet)
    inputs = tables["inputs"].sort("as_of_date", ENTITY)
    write_atomic(config.out / "inputs.parquet", inputs.write_parquet)
    write_atomic(config.out / "rejects.parquet", tables["rejects"].write_parquet)
    manifest = {
        **summary,
        "stabfrag_version": __version__,
        "inputs": {
            "prices": file_hash(config.prices),
            "fundamentals": file_hash(config.fundamentals),
            "text_vectors": file_hash(config.text_vectors),
        },
    }
    text_out = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(config.out / PROFILES_MANIFEST, lambda p: p.write_text(text_out))


def build_profiles(config: ProfileConfig) -> dict[str, Any]:
    """Build, write and summarise the profiles of every entity on every date."""
    if not config.dates:
        raise InputError(config.prices, "no as-of date in the range")
    models = load_models(config.model_dir, config.model)
    encoder = load_profile_encoder(config.model_dir or shipped_models())
    last = max(config.dates)
    checked = validate(read_prices(config.prices, where=pl.col(DATE) <= last), min_prices=0)
    prices = checked.prices
    if config.market is not None and prices.filter(pl.col(ENTITY) == config.market).height == 0:
        raise InputError(config.prices, f"the market entity '{config.market}' has no valid prices")
    newest = prices[DATE].max()
    assert isinstance(newest, dt.date)
    fund = (
        None
        if config.fundamentals is None
        else read_fundamentals(
            config.fundamentals, known_until=newest, entities=prices[ENTITY].unique()
        )
    )
    inputs, skipped = profile_inputs(
        prices,
        list(config.dates),
        market=config.market,
        fundamentals=None if fund is None else fund.rows,
        ticks=checked.ticks if checked.ticks.height else None,
        max_staleness_days=config.max_staleness_days,
        fundamentals_staleness_days=config.fundamentals_staleness_days,
    )
    text, has_text = _text_at(config, inputs)
    vectors32, ok = encoder.encode(inputs, models.stab, text=text, has_text=has_text)
    profiles = (
        inputs.select(ENTITY, "as_of_date")
        .with_columns(pl.Series("vector", vectors32, dtype=VECTOR_TYPE), _sources(inputs, has_text))
        .filter(pl.Series(ok))
        .sort("as_of_date", ENTITY)
    )
    rejects = _rejects(checked.rejects, None if fund is None else fund.rejects, skipped)
    made = {
        "profiles": profiles.height,
        "with_fundamentals": int(profiles["source"].str.contains("fundamentals").sum()),
        "with_text": int(has_text[ok].sum()),
    }
    summary = _summary(
        config,
        (encoder.sha256, models.stab.model_id),
        checked,
        fund,
        made,
        without_profile=skipped,
        without_signal=int((~ok).sum()),
    )
    _write(config, {"profiles": profiles, "inputs": inputs, "rejects": rejects}, summary)
    return summary
