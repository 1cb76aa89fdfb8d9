"""Column names and the Polars/Arrow schemas of every table; sql/ mirrors them."""

from __future__ import annotations

import datetime as dt

import polars as pl

ENTITY = "entity_id"
DATE = "date"
# A state request's row in the chunk's sorted price series: the row its features are read
# at. asof.requests sets it, the feature plan reads it, the chunk joins on it.
POS = "_pos"
DIM = 384
JOINT_TYPE = "STAB_FRAGILITY_V0"

# Input columns: required, then optional, with the dtype each is cast to.
REQUIRED_PRICE_COLUMNS: dict[str, pl.DataType] = {
    ENTITY: pl.String(),
    DATE: pl.Date(),
    "close": pl.Float64(),
}
OPTIONAL_PRICE_COLUMNS: dict[str, pl.DataType] = {
    "volume": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "spread_bps": pl.Float64(),
}
PRICE_SCHEMA = pl.Schema({**REQUIRED_PRICE_COLUMNS, **OPTIONAL_PRICE_COLUMNS})

ENTITY_TYPES = ("INSTRUMENT", "ISSUER", "MARKET")
ENTITIES_SCHEMA = pl.Schema(
    {
        ENTITY: pl.String(),
        "entity_type": pl.String(),
        "region": pl.String(),
        "issuer_id": pl.String(),
    }
)

REJECTS_SCHEMA = pl.Schema(
    {ENTITY: pl.String(), DATE: pl.Date(), "reason": pl.String(), "detail": pl.String()}
)
REJECTS_TABLE_SCHEMA = pl.Schema({"as_of_date": pl.Date(), **REJECTS_SCHEMA})

SCENARIOS_TABLE_SCHEMA = pl.Schema(
    {
        "as_of_date": pl.Date(),
        "scenario_id": pl.String(),
        "kind": pl.String(),
        "shock_type": pl.String(),
        "severity": pl.String(),
        "horizon_days": pl.Int64(),
        "price_shock": pl.Float64(),
        "vol_multiplier": pl.Float64(),
        "volume_multiplier": pl.Float64(),
        "spread_shock_bps": pl.Float64(),
        "shape": pl.String(),
        "reference_entity": pl.String(),
        "description": pl.String(),
        "path_source": pl.String(),
        "context_as_of": pl.Date(),
    }
)

VECTOR_TYPE = pl.Array(pl.Float32(), DIM)

JOINT_SCHEMA = pl.Schema(
    {
        "joint_type": pl.String(),
        "as_of_date": pl.Date(),
        "entity_scope": pl.String(),
        "model_id": pl.String(),
        "vector": VECTOR_TYPE,
        "kind": pl.String(),
        ENTITY: pl.String(),
        "scenario_id": pl.String(),
        "nearest_scenario_id": pl.String(),
        "nearest_scenario_similarity": pl.Float64(),
        "fragility": pl.Float64(),
        "features_null": pl.Int32(),
    }
)


def conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Select and cast `frame` to exactly `schema`, so every partition has one type per column.

    A frame with no columns is an empty table: selecting literals from it would make one
    all-null row.
    """
    if frame.width == 0:
        return pl.DataFrame(schema=schema)
    if frame.schema == schema:  # the usual case: nothing to select or cast
        return frame
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def date_span(column: pl.Series) -> tuple[dt.date, dt.date]:
    """First and last date of a Date column, typed as dates."""
    first, last = column.min(), column.max()
    if not isinstance(first, dt.date) or not isinstance(last, dt.date):
        raise ValueError(f"column {column.name} holds no dates")
    return first, last
