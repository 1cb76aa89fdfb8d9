"""Entity metadata: type, region and issuer, with the SPEC defaults where a file is silent."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stabfrag.errors import InputError
from stabfrag.ingest.files import check_columns, read_frame
from stabfrag.schema import ENTITIES_SCHEMA, ENTITY, ENTITY_TYPES


def read_entities(path: Path | str | None, entity_ids: pl.Series) -> pl.DataFrame:
    """Return entity metadata for `entity_ids`, with SPEC defaults where the file is silent,
    and `matched`: whether the file describes the entity."""
    base = pl.DataFrame({ENTITY: entity_ids.unique().sort()})
    matched = pl.lit(False)
    if path is not None:
        path = Path(path)
        meta = read_frame(path)
        check_columns(path, meta.columns, [ENTITY])
        meta = meta.select(
            [pl.col(c).cast(pl.String) for c in ENTITIES_SCHEMA.names() if c in meta.columns]
        ).unique(maintain_order=True)
        clash = meta.filter(pl.col(ENTITY).is_duplicated())
        if clash.height:
            raise InputError(
                path, f"entity {clash[ENTITY][0]} has conflicting rows (keep one per entity)"
            )
        if "entity_type" in meta.columns:
            unknown = meta.filter(
                pl.col("entity_type").is_not_null() & ~pl.col("entity_type").is_in(ENTITY_TYPES)
            )
            if unknown.height:
                row = unknown.row(0, named=True)
                raise InputError(
                    path,
                    f"entity_type '{row['entity_type']}' of {row[ENTITY]} is not one of "
                    + ", ".join(ENTITY_TYPES),
                )
        base = base.join(meta.with_columns(pl.lit(True).alias("_in_file")), on=ENTITY, how="left")
        matched = pl.col("_in_file").fill_null(False)
    suffix = pl.col(ENTITY).str.extract(r"\.([^.]+)$", 1)
    cols = {
        "entity_type": pl.lit("INSTRUMENT"),
        "region": suffix,
        "issuer_id": pl.lit(None, pl.String),
    }
    return base.with_columns(
        *[
            (pl.col(c).fill_null(default) if c in base.columns else default).alias(c)
            for c, default in cols.items()
        ],
        matched.alias("matched"),
    ).select(*ENTITIES_SCHEMA.names(), "matched")
