"""joint_embeddings rows: the one place an entity row or a scenario row is assembled, with
both entity_scope builders (SPEC §6, keys in the documented order)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl

from stabfrag.scenarios.library import Scenario
from stabfrag.schema import DATE, ENTITY, JOINT_TYPE, VECTOR_TYPE


def entity_scope(has_profile: pl.Series, *, scenarios: bool, factors: bool) -> pl.Expr:
    """entity_scope JSON of an entity state, from its metadata and window columns. Its
    source names the parts its vector holds: the stab branch, the scenario branch (when
    weighed), a factor model's block (when factors are declared) and the state's profile
    (when it has one and profiles are weighed)."""
    shared = "+".join(["stab", *(["scenarios"] * scenarios), *(["factors"] * factors)])
    source = (
        pl.when(pl.lit(has_profile)).then(pl.lit(f"{shared}+profile")).otherwise(pl.lit(shared))
    )
    return pl.struct(
        pl.col("entity_type"),
        pl.col(ENTITY),
        pl.col("region"),
        source.alias("source"),
        pl.struct(
            pl.col("window_start").cast(pl.String).alias("start_date"),
            pl.col(DATE).cast(pl.String).alias("end_date"),
        ).alias("stab_window"),
    ).struct.json_encode()


def scenario_scope(table: pl.DataFrame, library: tuple[Scenario, ...]) -> pl.Series:
    """entity_scope JSON of each scenario of `table` (scenario_id, path_source,
    context_as_of); a historical episode in its market's context says on which day, as
    `context_as_of` (its last)."""
    by_id = {s.id: s for s in library}

    def context(day: dt.date | None) -> dict[str, str]:
        return {} if day is None else {"context_as_of": day.isoformat()}

    return pl.Series(
        [
            json.dumps(
                {
                    "entity_type": "SCENARIO",
                    "scenario_id": sid,
                    "source": "scenarios",
                    "metadata": {**by_id[sid].metadata(), "path_source": src, **context(day)},
                },
                separators=(",", ":"),
            )
            for sid, src, day in table.select(
                "scenario_id", "path_source", "context_as_of"
            ).iter_rows()
        ],
        dtype=pl.String,
    )


def _values(name: str, values: np.ndarray | None, dtype: pl.DataType) -> pl.Expr | pl.Series:
    if values is None:
        return pl.lit(None, dtype).alias(name)
    series = pl.Series(name, values)
    # What cannot be computed (no HIGH scenario: no fragility) is null, never NaN.
    return series.fill_nan(None) if series.dtype.is_float() else series


def joint_rows(
    base: pl.DataFrame,
    *,
    kind: str,
    model_id: str,
    scope: pl.Expr | pl.Series,
    vectors: np.ndarray,
    nearest: np.ndarray | None = None,
    similarity: np.ndarray | None = None,
    fragility: np.ndarray | None = None,
) -> pl.DataFrame:
    """One joint_embeddings row per row of `base`, in the table's column order.

    `base` has as_of_date, features_null and entity_id (entities) or scenario_id
    (scenarios); the nearest scenario and fragility belong to entity rows only.
    """
    ident = {
        ENTITY: pl.col(ENTITY) if kind == "entity" else pl.lit(None, pl.String).alias(ENTITY),
        "scenario_id": pl.col("scenario_id")
        if kind == "scenario"
        else pl.lit(None, pl.String).alias("scenario_id"),
    }
    return base.select(
        pl.lit(JOINT_TYPE).alias("joint_type"),
        "as_of_date",
        scope.alias("entity_scope"),
        pl.lit(model_id).alias("model_id"),
        pl.Series("vector", vectors, dtype=VECTOR_TYPE),
        pl.lit(kind).alias("kind"),
        ident[ENTITY],
        ident["scenario_id"],
        _values("nearest_scenario_id", nearest, pl.String()),
        _values("nearest_scenario_similarity", similarity, pl.Float64()),
        _values("fragility", fragility, pl.Float64()),
        "features_null",
    )
