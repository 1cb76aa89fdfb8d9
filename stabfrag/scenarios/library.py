"""The scenario library: the TOML format, its checks, and the library as a table."""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import polars as pl

from stabfrag.config import FACTOR_ROLES, packaged
from stabfrag.errors import ScenarioError

SHOCK_TYPES = (
    "EQUITY_CRASH",
    "CREDIT_SPREAD",
    "VOL_SPIKE",
    "LIQUIDITY_DRYUP",
    "RATES_SHOCK",
    "FX_CRISIS",
    "BASELINE",
)
SEVERITIES = ("NONE", "LOW", "MEDIUM", "HIGH")
SHAPES = ("front_loaded", "linear", "v_shape", "gap")
KINDS = ("synthetic", "historical")

BASE_VOL = 0.16  # the index volatility that historical peak_vol figures are measured against


@dataclass(frozen=True)
class Scenario:
    """One scenario of the library; historical ones carry their episode's known magnitudes."""

    id: str
    kind: str
    shock_type: str
    severity: str
    description: str
    horizon_days: int
    price_shock: float  # cumulative fractional move over the horizon, e.g. -0.35
    vol_multiplier: float
    volume_multiplier: float
    spread_shock_bps: float
    shape: str
    zero_volume_share: float = 0.0
    reference_entity: str | None = None
    episode_start: dt.date | None = None
    episode_end: dt.date | None = None
    source: str | None = None
    known_from: dt.date | None = None  # a historical scenario exists from then (default: its end)
    # Each market factor's cumulative move over the horizon (FACTOR_ROLES), e.g. a rates
    # shock's bond fund -0.14: a factor model's scenario block. Unnamed factors stay calm.
    factor_shocks: tuple[tuple[str, float], ...] = ()

    def known_on(self, as_of: dt.date) -> bool:
        """Whether the scenario exists in a build as of `as_of` (no episode from the future)."""
        if self.kind != "historical":
            return True
        known = self.known_from or self.episode_end
        return known is not None and known <= as_of

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "shock_type": self.shock_type,
            "severity": self.severity,
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "price_shock": self.price_shock,
            "vol_multiplier": self.vol_multiplier,
            "volume_multiplier": self.volume_multiplier,
            "spread_shock_bps": self.spread_shock_bps,
            "shape": self.shape,
        }
        if self.kind == "historical":
            meta["episode_start"] = str(self.episode_start)
            meta["episode_end"] = str(self.episode_end)
            if self.known_from is not None:
                meta["known_from"] = str(self.known_from)
            meta["reference_entity"] = self.reference_entity
        return meta


_REQUIRED = ("id", "kind", "shock_type", "severity", "description")
_NUMBERS = {
    "horizon_days": (1, 250),
    "price_shock": (-0.95, 2.0),
    "vol_multiplier": (0.1, 20.0),
    "volume_multiplier": (0.0, 50.0),
    "spread_shock_bps": (-2000.0, 5000.0),
    "zero_volume_share": (0.0, 1.0),
}
# Historical episodes are given by their magnitudes; these names map onto the shock fields.
_HISTORICAL_ALIASES = {
    "peak_to_trough": "price_shock",
    "duration_days": "horizon_days",
    "volume_surge": "volume_multiplier",
}


def _parse(raw: dict[str, Any], path: Path) -> Scenario:
    sid = raw.get("id", "<no id>")

    def bad(field: str, why: str) -> ScenarioError:
        return ScenarioError(f"{path}: scenario {sid}: field {field}: {why}")

    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise bad(key, "missing or not text")
    values = dict(raw)
    for alias, name in _HISTORICAL_ALIASES.items():
        if alias in values:
            values[name] = values.pop(alias)
    if "peak_vol" in values:  # annualised peak volatility -> multiplier of the calm baseline
        peak = values.pop("peak_vol")
        if not isinstance(peak, int | float) or peak <= 0:
            raise bad("peak_vol", "must be a positive number")
        values["vol_multiplier"] = float(peak) / BASE_VOL
    choices = {"kind": KINDS, "shock_type": SHOCK_TYPES, "severity": SEVERITIES}
    for key, allowed in choices.items():
        if values[key] not in allowed:
            raise bad(key, f"'{values[key]}' is not one of {', '.join(allowed)}")
    values.setdefault("shape", "front_loaded")
    if values["shape"] not in SHAPES:
        raise bad("shape", f"'{values['shape']}' is not one of {', '.join(SHAPES)}")
    values.setdefault("spread_shock_bps", 0.0)
    values.setdefault("zero_volume_share", 0.0)
    for key, (lo, hi) in _NUMBERS.items():
        if key not in values:
            raise bad(key, "missing")
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad(key, f"{v!r} is not a number")
        if not lo <= v <= hi:
            raise bad(key, f"{v} is outside [{lo}, {hi}]")
    if values["kind"] == "historical":
        for key in ("episode_start", "episode_end"):
            if not isinstance(values.get(key), dt.date):
                raise bad(key, "missing or not a date (YYYY-MM-DD)")
        if values["episode_end"] < values["episode_start"]:
            raise bad("episode_end", "is before episode_start")
        if "known_from" in values and not isinstance(values["known_from"], dt.date):
            raise bad("known_from", "not a date (YYYY-MM-DD)")
    values["factor_shocks"] = _factor_shocks(values.get("factor_shocks", {}), bad)
    known = {f.name for f in fields(Scenario)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise bad(unknown[0], "unknown field")
    values["horizon_days"] = int(values["horizon_days"])
    for key in (
        "price_shock",
        "vol_multiplier",
        "volume_multiplier",
        "spread_shock_bps",
        "zero_volume_share",
    ):
        values[key] = float(values[key])
    return Scenario(**values)


def _factor_shocks(
    raw: Any, bad: Callable[[str, str], ScenarioError]
) -> tuple[tuple[str, float], ...]:
    """`factor_shocks = { rates = -0.14, fx = 0.03 }` -> ((role, move), ...) in role order."""
    if not isinstance(raw, dict):
        raise bad("factor_shocks", "not a table of FACTOR = move")
    unknown = sorted(set(raw) - set(FACTOR_ROLES))
    if unknown:
        raise bad("factor_shocks", f"'{unknown[0]}' is not one of {', '.join(FACTOR_ROLES)}")
    lo, hi = _NUMBERS["price_shock"]
    for role, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad(f"factor_shocks.{role}", f"{v!r} is not a number")
        if not lo <= v <= hi:
            raise bad(f"factor_shocks.{role}", f"{v} is outside [{lo}, {hi}]")
    return tuple((r, float(raw[r])) for r in FACTOR_ROLES if r in raw)


def default_library() -> Path:
    """The scenario library shipped inside the package (data/scenarios of the source tree)."""
    folder = packaged("scenario_library")
    if not folder.is_dir():
        raise ScenarioError("no scenario library found: pass --scenarios DIR")
    return folder


def load_library(folder: Path | None = None) -> tuple[Scenario, ...]:
    """Every scenario of every *.toml in `folder`, in file then table order."""
    folder = folder or default_library()
    if not folder.is_dir():
        raise ScenarioError(f"{folder}: not a folder of scenario files")
    out: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ScenarioError(
                f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
        tables = doc.get("scenario")
        if not isinstance(tables, list) or not tables:
            raise ScenarioError(f"{path}: no [[scenario]] tables")
        for raw in tables:
            sc = _parse(raw, path)
            if sc.id in seen:
                raise ScenarioError(f"{path}: scenario {sc.id}: field id: also in {seen[sc.id]}")
            seen[sc.id] = path
            out.append(sc)
    if not out:
        raise ScenarioError(f"{folder}: no scenario files (*.toml)")
    return tuple(out)


def library_frame(library: tuple[Scenario, ...]) -> pl.DataFrame:
    """The library as a table: one row per scenario with its metadata."""
    return pl.DataFrame(
        {
            "scenario_id": [s.id for s in library],
            "kind": [s.kind for s in library],
            "shock_type": [s.shock_type for s in library],
            "severity": [s.severity for s in library],
            "horizon_days": [s.horizon_days for s in library],
            "price_shock": [s.price_shock for s in library],
            "vol_multiplier": [s.vol_multiplier for s in library],
            "volume_multiplier": [s.volume_multiplier for s in library],
            "spread_shock_bps": [s.spread_shock_bps for s in library],
            "shape": [s.shape for s in library],
            "reference_entity": [s.reference_entity for s in library],
            "description": [s.description for s in library],
        }
    )
