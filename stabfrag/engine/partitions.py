"""A chunk's tables cut into one partition per as-of date, with each date's counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.engine.tally import Tally
from stabfrag.ingest.prices import Validated
from stabfrag.ingest.reasons import ROW_REASONS, STATE_REASONS
from stabfrag.schema import DATE, ENTITY, conform
from stabfrag.sinks.base import check_tables
from stabfrag.sinks.dataset import TABLE_SCHEMAS

# The scenarios table of a date: its library version's key and table.
ScenarioTable = Callable[[dt.date], tuple[object, pl.DataFrame]]


@dataclass(frozen=True)
class DatePart:
    """Everything a chunk built for one as-of date: its tables and what it counts."""

    as_of: dt.date
    tables: dict[str, pl.DataFrame]  # joint_embeddings, features, rejects (and scenarios)
    counts: dict[str, int]  # what the date's manifest records
    tally: Tally  # what the run summary adds up


def date_parts(
    dates: list[dt.date],
    whole: dict[str, pl.DataFrame],
    tally: dict[dt.date, Tally],
    scenarios: ScenarioTable | None,
) -> list[DatePart]:
    """Split the chunk's tables into one part per as-of date (with the scenarios table of
    each date when `scenarios` is given).

    Each table is given its schema and checked for non-finite values once, here, not once
    per date in the sink: a query per table and date cost more than the writes of a daily
    run's small partitions.
    """
    whole = {
        **whole,
        "rejects": whole["rejects"].sort(
            "as_of_date", "reason", ENTITY, DATE, "detail", nulls_last=True
        ),
    }
    whole = {name: conform(frame, TABLE_SCHEMAS[name]) for name, frame in whole.items()}
    check_tables(whole)
    by_date = {name: split_by_date(frame) for name, frame in whole.items()}
    templates: dict[object, pl.DataFrame] = {}
    out = []
    for d in dates:
        tables = {name: parts.get(d, pl.DataFrame()) for name, parts in by_date.items()}
        if scenarios is not None:
            tables["scenarios"] = _scenario_table(d, scenarios, templates)
        counts = _counts(tables)
        day = tally[d] + Tally(
            states_out=counts["states"],
            entities_in=counts["entities_in"],
            scenario_rows=counts["scenarios"],
        )
        out.append(DatePart(d, tables, counts, day))
    return out


def _counts(tables: dict[str, pl.DataFrame]) -> dict[str, int]:
    """A date's manifest counts: per partition, entities in = states + entities rejected."""
    kinds = tables["joint_embeddings"].get_column("kind", default=pl.Series(dtype=pl.String))
    states = int((kinds == "entity").sum())
    rej = tables["rejects"]
    n_ent_rej = int(rej["reason"].is_in(STATE_REASONS).sum()) if rej.height else 0
    return {
        "states": states,
        "scenarios": int((kinds == "scenario").sum()),
        "entities_in": states + n_ent_rej,
        "entities_rejected": n_ent_rej,
        "rejects": rej.height,
    }


def _scenario_table(
    as_of: dt.date, scenarios: ScenarioTable, templates: dict[object, pl.DataFrame]
) -> pl.DataFrame:
    """The scenarios table of `as_of`: its library version's table, conformed and checked
    once per version, with the date put in without a query."""
    key, table = scenarios(as_of)
    template = templates.get(key)
    if template is None:
        table = table.with_columns(pl.lit(as_of).alias("as_of_date"))
        template = templates[key] = conform(table, TABLE_SCHEMAS["scenarios"])
        check_tables({"scenarios": template})
    table = template.clone()
    column = table.get_column_index("as_of_date")
    dates = pl.repeat(as_of, table.height, eager=True).alias("as_of_date")
    return table.replace_column(column, dates)


def chunk_tally(
    chunk: list[dt.date],
    checked: Validated,
    own: pl.Expr,
    rejects: pl.DataFrame,
    no_context: pl.Series,
    stateless: pl.DataFrame,
    no_factor: dict[str, pl.Series] | None = None,
) -> dict[dt.date, Tally]:
    """The run summary's counts of each date of the chunk (states are added per part);
    `stateless`: the dates of the kept rows of entities without a state in the chunk;
    `no_factor`: for each declared factor, the dates of the states whose date lacked it."""
    # A row is read by the chunk its date falls in, though a bad tick may be known (and
    # reported) only in the next: rows read count by date, rejects by when known.
    read_rejects = checked.rejects.filter(pl.col("reason").is_in(ROW_REASONS)).filter(own)
    read = pl.concat([checked.prices.filter(own)[DATE], read_rejects[DATE]])
    per_date = {
        "rows_read": _per_date(read, chunk),
        "range_dropped": _per_date(checked.range_dropped_dates.to_frame().filter(own)[DATE], chunk),
        "spread_dropped": _per_date(
            checked.spread_dropped_dates.to_frame().filter(own)[DATE], chunk
        ),
        "states_without_context": _per_date(no_context, chunk),
        "rows_of_rejected_entities": _per_date(stateless.filter(own)[DATE], chunk),
    }
    rows = _reasons_by_date(rejects.filter(pl.col("reason").is_in(ROW_REASONS)))
    ents = _reasons_by_date(rejects.filter(pl.col("reason").is_in(STATE_REASONS)))
    factors = {role: _per_date(dates, chunk) for role, dates in (no_factor or {}).items()}
    return {
        d: Tally(
            **{key: int(n[i]) for key, n in per_date.items()},
            rows_rejected=rows.get(d, {}),
            entities_rejected=ents.get(d, {}),
            states_without_factor={role: int(n[i]) for role, n in factors.items() if n[i]},
        )
        for i, d in enumerate(chunk)
    }


def _runs(frame: pl.DataFrame) -> dict[dt.date, tuple[int, int]]:
    """(offset, length) of each as-of date's rows in `frame`, sorted by as_of_date."""
    days = frame["as_of_date"].cast(pl.Int32).to_numpy()
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    lengths = np.diff(np.r_[starts, len(days)])
    keys = frame["as_of_date"].gather(starts).to_list()
    return {d: (int(a), int(n)) for d, a, n in zip(keys, starts, lengths, strict=True)}


def split_by_date(frame: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
    """One frame per as-of date, in row order: slices of the frame, not copies (every
    table reaches here sorted by as_of_date; a frame that is not is sorted first)."""
    if frame.height == 0:
        return {}
    if not frame["as_of_date"].is_sorted():
        frame = frame.sort("as_of_date", maintain_order=True)
    return {d: frame.slice(a, n) for d, (a, n) in _runs(frame).items()}


def _per_date(dates: pl.Series, chunk: list[dt.date]) -> np.ndarray:
    """How many of `dates` fall to each as-of date of the chunk: the first on or after its
    own date (an undated row to the chunk's first)."""
    days = dates.cast(pl.Int32).fill_null(np.iinfo(np.int32).min).to_numpy()
    bounds = pl.Series(chunk, dtype=pl.Date).cast(pl.Int32).to_numpy()
    at = np.minimum(np.searchsorted(bounds, days, side="left"), len(chunk) - 1)
    return np.bincount(at, minlength=len(chunk))


def _reasons_by_date(rejects: pl.DataFrame) -> dict[dt.date, dict[str, int]]:
    """Rejects counted by as-of date and reason."""
    out: dict[dt.date, dict[str, int]] = {}
    counts = rejects.group_by("as_of_date", "reason").len().sort("as_of_date", "reason")
    for day, reason, n in counts.iter_rows():  # one row per (date, reason): a handful
        out.setdefault(day, {})[reason] = n
    return out
