"""The run's counts as a typed value: a date's, a block's or a whole run's add up with +."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Counts by key, added."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in (*a, *(k for k in b if k not in a))}


@dataclass(frozen=True)
class Tally:
    """What the run summary counts: rows read and rejected, states out, entities in.

    A chunk counts each of its dates; an entity block counts its share of them; a run adds
    them all. Per date, entities in = states out + entities rejected.
    """

    rows_read: int = 0
    range_dropped: int = 0
    spread_dropped: int = 0
    states_without_context: int = 0  # states whose date had no market reference (v2)
    # by declared factor role: states whose date had no state of that factor (it read calm)
    states_without_factor: dict[str, int] = field(default_factory=dict)
    rows_of_rejected_entities: int = 0  # kept rows of entities with no state in their chunk
    states_out: int = 0
    entities_in: int = 0
    scenario_rows: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)  # by reason
    entities_rejected: dict[str, int] = field(default_factory=dict)  # by reason

    def __add__(self, other: Tally) -> Tally:
        values: dict[str, Any] = {}
        for f in fields(self):  # ten fields, not rows
            a, b = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = _add(a, b) if isinstance(a, dict) else a + b
        return Tally(**values)

    def as_json(self) -> dict[str, Any]:
        """For a block manifest, which a resumed run reads back with from_json."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
