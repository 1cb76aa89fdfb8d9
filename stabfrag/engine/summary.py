"""Run summaries: one dict for --json, a few plain lines for people."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from stabfrag.engine.tally import Tally
from stabfrag.ingest.prices import Validated


def validation_summary(v: Validated) -> dict[str, Any]:
    """Counts that reconcile.

    rows in = kept + rejected + rows of rejected entities; entities in = valid + rejected.
    """
    entities_rejected = sum(v.entities_rejected.values())
    row_rejects = {k: n for k, n in v.reject_counts().items() if k not in v.entities_rejected}
    return {
        "rows_in": v.rows_in,
        "rows_kept": v.prices.height,
        "rows_rejected": v.rows_rejected,
        "rows_of_rejected_entities": v.rows_of_rejected_entities,
        "row_rejects_by_reason": row_rejects,
        "range_dropped": v.range_dropped,
        "spread_dropped": v.spread_dropped,
        "entities_in": v.entities_in,
        "entities_valid": v.entities_in - entities_rejected,
        "entities_rejected": entities_rejected,
        "entity_rejects_by_reason": dict(sorted(v.entities_rejected.items())),
    }


def emit(summary: dict[str, Any], *, as_json: bool, stream: TextIO | None = None) -> None:
    """Print the summary as JSON or as `key: value` lines (on stdout unless `stream`)."""
    out = stream or sys.stdout
    if as_json:
        out.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={n}" for k, n in value.items()) or "none"
        out.write(f"{key}: {value}\n")


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class RunSummary:
    """Counts for the whole run; per partition, entities in = states + entities rejected."""

    as_of_dates: list[dt.date] = field(default_factory=list)
    skipped_dates: list[dt.date] = field(default_factory=list)
    damaged_dates: list[dt.date] = field(default_factory=list)  # sealed, then found damaged
    tally: Tally = field(default_factory=Tally)  # every sealed date's counts, added up
    warnings: list[str] = field(default_factory=list)
    database: dict[str, Any] | None = None  # what a PostgreSQL load did
    models: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    out: str = ""
    chunk_days: int | None = None  # calendar days per chunk (from --memory unless given)
    context: str | None = None  # what a context model's market reference was (None: no context)
    factors: str | None = None  # a factor model's declared factors
    analog_index: dict[str, Any] | None = None  # the folder's analog index, brought up to date

    @property
    def states_out(self) -> int:
        return self.tally.states_out

    @property
    def scenario_rows(self) -> int:
        return self.tally.scenario_rows

    @property
    def rows_rejected(self) -> dict[str, int]:
        return self.tally.rows_rejected

    def as_dict(self) -> dict[str, Any]:
        t = self.tally
        return {
            "as_of_dates": [d.isoformat() for d in self.as_of_dates],
            "partitions_written": len(self.as_of_dates),
            "partitions_skipped": len(self.skipped_dates),
            **(
                {"partitions_damaged": [d.isoformat() for d in self.damaged_dates]}
                if self.damaged_dates
                else {}
            ),
            # rows_read = rows_kept + rows_rejected + rows_of_rejected_entities
            "rows_read": t.rows_read,
            "rows_kept": t.rows_read - sum(t.rows_rejected.values()) - t.rows_of_rejected_entities,
            "rows_rejected": sum(t.rows_rejected.values()),
            "rows_of_rejected_entities": t.rows_of_rejected_entities,
            "row_rejects_by_reason": dict(sorted(t.rows_rejected.items())),
            "range_dropped": t.range_dropped,
            "spread_dropped": t.spread_dropped,
            # Sums over as-of dates: an entity counts once per date it is in.
            "entity_states_in": t.entities_in,
            "states_out": t.states_out,
            "entity_states_rejected": sum(t.entities_rejected.values()),
            "entity_rejects_by_reason": dict(sorted(t.entities_rejected.items())),
            "scenario_rows": t.scenario_rows,
            "states_without_context": t.states_without_context,
            "states_without_factor": dict(sorted(t.states_without_factor.items())),
            "warnings": self.warnings,
            **({"database": self.database} if self.database is not None else {}),
            "models": self.models,
            "weights": self.weights,
            **({"chunk_days": self.chunk_days} if self.chunk_days is not None else {}),
            **({"context_reference": self.context} if self.context is not None else {}),
            **({"factors": self.factors} if self.factors is not None else {}),
            **({"analog_index": self.analog_index} if self.analog_index is not None else {}),
            "timings_s": {k: round(v, 3) for k, v in self.timings.seconds.items()},
            "out": self.out,
        }
