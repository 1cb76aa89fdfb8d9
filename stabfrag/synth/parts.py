"""What the generator's steps share: the universe, event records, the daily scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DAILY = 1.0 / np.sqrt(252.0)


def front_loaded(length: int) -> np.ndarray:
    w = np.exp(-np.arange(length) / max(length / 4, 1.0))
    return w / w.sum()


@dataclass(frozen=True)
class Universe:
    """Who is what: ids, sector, region, type and share volume of every entity."""

    ids: np.ndarray
    sector: np.ndarray
    region: np.ndarray
    kind: np.ndarray
    base_volume: np.ndarray
    small: np.ndarray  # the least traded fifth: where dry-ups and zero volume happen


Events = list[dict[str, Any]]


def entity_events(
    kind: str,
    prefix: str,
    ids: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    magnitude: np.ndarray | float | None,
) -> Events:
    """One event per entity of `ids` (magnitude: one value each, or one for all)."""
    mags = np.broadcast_to(np.asarray(magnitude, dtype=object), ids.shape)
    return [
        {
            "event_id": f"{prefix}_{e}",
            "event_type": kind,
            "start": int(s),
            "end": int(s + ln - 1),
            "entities": [e],
            "magnitude": None if m is None else float(m),
        }
        for e, s, ln, m in zip(ids, starts, lengths, mags, strict=True)
    ]


def market_events(episodes: Events, magnitudes: list[float], first: int = 0) -> Events:
    """One market-wide event per episode (numbered from `first`)."""
    return [
        {
            "event_id": f"MKT_{ep['kind']}_{first + i}",
            "event_type": ep["kind"],
            "start": ep["start"],
            "end": ep["start"] + ep["length"] - 1,
            "entities": None,
            "magnitude": m,
        }
        for i, (ep, m) in enumerate(zip(episodes, magnitudes, strict=True))
    ]
