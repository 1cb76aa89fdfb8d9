"""Labelled periods: read a labels file and tag each built state with its period's label."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stabfrag.errors import LabelError, first_line
from stabfrag.scenarios.library import SHOCK_TYPES
from stabfrag.schema import ENTITY

LABELS = ("stress", "calm")


def read_labels(path: Path) -> pl.DataFrame:
    """start, end, label, and optional shock_type, entity_id (empty = every entity),
    scenario_id (the historical scenario of the episode) and source (its name)."""
    try:
        frame = pl.read_csv(path, comment_prefix="#", infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LabelError(f"{path}: cannot read labels ({first_line(exc)})") from None
    missing = [c for c in ("start", "end", "label") if c not in frame.columns]
    if missing:
        raise LabelError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = with_optional_columns(frame)
    frame = frame.with_columns(
        pl.col("start").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
        pl.col("end").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
        pl.col("label").str.strip_chars().str.to_lowercase(),
        pl.col("shock_type").str.strip_chars().replace("", None),
        pl.col(ENTITY).str.strip_chars().replace("", None),
        pl.col("scenario_id").str.strip_chars().replace("", None),
    )
    bad = frame.filter(pl.col("start").is_null() | pl.col("end").is_null())
    if bad.height:
        raise LabelError(f"{path}: a start or end is not a date (YYYY-MM-DD)")
    bad = frame.filter(pl.col("end") < pl.col("start"))
    if bad.height:
        raise LabelError(f"{path}: period {bad['start'][0]}..{bad['end'][0]} ends before it starts")
    bad = frame.filter(~pl.col("label").is_in(LABELS))
    if bad.height:
        raise LabelError(f"{path}: label '{bad['label'][0]}' is not stress or calm")
    bad = frame.filter(
        pl.col("shock_type").is_not_null() & ~pl.col("shock_type").is_in(SHOCK_TYPES)
    )
    if bad.height:
        raise LabelError(f"{path}: unknown shock type '{bad['shock_type'][0]}'")
    # Overlapping periods for the same entities would give a state two labels.
    srt = frame.with_columns(pl.col(ENTITY).fill_null("*").alias("_scope")).sort("_scope", "start")
    clash = srt.filter(
        (pl.col("_scope") == pl.col("_scope").shift(1))
        & (pl.col("start") <= pl.col("end").shift(1))
    )
    if clash.height:
        row = clash.row(0, named=True)
        raise LabelError(f"{path}: period starting {row['start']} overlaps the one before it")
    return frame.drop("_scope" if "_scope" in frame.columns else [])


OPTIONAL = ("shock_type", ENTITY, "source", "scenario_id")


def with_optional_columns(labels: pl.DataFrame) -> pl.DataFrame:
    """The labels with every optional column, null where the file has none."""
    return labels.with_columns(
        pl.lit(None, pl.String).alias(c) for c in OPTIONAL if c not in labels.columns
    )


def label_states(states: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """`states` (as_of_date, entity_id, ...) with label, shock_type, scenario_id and episode
    (the period's source, or its dates) from the period (for its entity, or for every
    entity) that holds its date; unlabelled states are left out. An entity's own period
    wins over a market-wide one."""
    tags = ["label", "shock_type", "scenario_id", "episode"]
    lab = with_optional_columns(labels).select(
        "start",
        "end",
        "label",
        "shock_type",
        "scenario_id",
        pl.coalesce("source", pl.format("{}..{}", "start", "end")).alias("episode"),
        ENTITY,
    )
    everyone = lab.filter(pl.col(ENTITY).is_null()).drop(ENTITY).sort("start")
    inside = pl.col("as_of_date") <= pl.col("end")
    # A joint row's own scenario_id (null on entity rows) is not the label's.
    tagged = (
        states.drop([c for c in tags if c in states.columns])
        .sort("as_of_date")
        .join_asof(
            everyone,
            left_on="as_of_date",
            right_on="start",
            strategy="backward",
            check_sortedness=False,
        )
        .with_columns(pl.when(inside).then(pl.col(c)).alias(c) for c in tags)
        .drop("start", "end")
    )
    own = lab.filter(pl.col(ENTITY).is_not_null())
    if own.height:
        hit = (
            tagged.select("as_of_date", ENTITY)
            .join(own, on=ENTITY)
            .filter(pl.col("as_of_date").is_between(pl.col("start"), pl.col("end")))
            .select("as_of_date", ENTITY, *[pl.col(c).alias(f"_{c}") for c in tags])
            .unique(["as_of_date", ENTITY], keep="first")
        )
        mine = pl.col("_label").is_not_null()
        tagged = (
            tagged.join(hit, on=["as_of_date", ENTITY], how="left")
            .with_columns(
                pl.when(mine).then(pl.col(f"_{c}")).otherwise(pl.col(c)).alias(c) for c in tags
            )
            .with_columns(mine.alias("own_label"))
            .drop(*[f"_{c}" for c in tags])
        )
    else:
        tagged = tagged.with_columns(pl.lit(False).alias("own_label"))
    return tagged.filter(pl.col("label").is_not_null()).sort("as_of_date", ENTITY)
