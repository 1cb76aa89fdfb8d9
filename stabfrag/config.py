"""Frozen run configuration: paths, weights, limits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

BRANCHES = ("stab", "scen", "prof")


class ConfigError(Exception):
    """A setting that cannot be used; the message is one line."""


def parse_weights(text: str | None) -> dict[str, float] | None:
    """'stab=1,scen=0.5,prof=0.5' -> dict; unnamed branches keep the model's defaults."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in BRANCHES:
            raise ConfigError(f"--weights: '{part}' is not one of {', '.join(BRANCHES)}=NUMBER")
        try:
            w = float(value)
        except ValueError:
            raise ConfigError(f"--weights: '{value}' is not a number") from None
        if not w >= 0 or w == float("inf"):
            raise ConfigError(f"--weights: {name} must be a finite number >= 0")
        out[name] = w
    return out


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build or backfill reads."""

    prices: Path
    out: Path = Path("stabfrag-out")
    entities: Path | None = None
    profiles: Path | None = None
    scenarios: Path | None = None
    model_dir: Path | None = None
    weights: dict[str, float] | None = None
    max_staleness_days: int = 7
    chunk_days: int = 366
    resume: bool = False
    pg_dsn: str | None = None
    pg_table: str = "joint_embeddings"
    pg_staging: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DateRange:
    start: dt.date
    end: dt.date
    freq: str = "day"
