"""Run summaries: one dict for --json, a few plain lines for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from stabfrag.inputs import Validated


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
        "entities_in": v.entities_in,
        "entities_valid": v.entities_in - entities_rejected,
        "entities_rejected": entities_rejected,
        "entity_rejects_by_reason": dict(sorted(v.entities_rejected.items())),
    }


def emit(summary: dict[str, Any], *, as_json: bool) -> None:
    """Print the summary as JSON or as `key: value` lines."""
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={n}" for k, n in value.items()) or "none"
        sys.stdout.write(f"{key}: {value}\n")
