"""The scenario library: load the TOML files, synthesise daily paths for all scenarios at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.schema import DATE, ENTITY, PRICE_SCHEMA

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

BASELINE_DAYS = 400  # calm history before the shock: fills every window (294 rows + 63)
BASE_VOL = 0.16  # the index volatility that historical peak_vol figures are measured against
BASE_SPREAD = 150.0
PATH_END = dt.date(2000, 12, 29)  # synthetic paths carry dates only to order their rows


class ScenarioError(Exception):
    """A malformed scenario file: the message names the file, the scenario and the field."""


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


def default_library() -> Path:
    """data/scenarios of the source tree, or the copy shipped inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "data" / "scenarios", here / "scenario_library"):
        if candidate.is_dir():
            return candidate
    raise ScenarioError("no scenario library found: pass --scenarios DIR")


def load_library(folder: Path | None = None) -> tuple[Scenario, ...]:
    """Every scenario of every *.toml in `folder`, in file then table order."""
    folder = folder or default_library()
    if not folder.is_dir():
        raise ScenarioError(f"{folder}: not a folder of scenario files")
    out: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):  # a handful of files, not data rows
        try:
            doc = tomllib.loads(path.read_text())
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


def _seed(scenario_id: str) -> int:
    return int(hashlib.sha256(scenario_id.encode()).hexdigest()[:16], 16)


def _shape_weights(shape: str, horizon: int) -> np.ndarray:
    """How the cumulative log move is spread over the horizon (sums to 1 for the net move)."""
    t = np.arange(horizon, dtype=np.float64)
    if shape == "front_loaded":
        w = np.exp(-t / max(horizon / 4.0, 1.0))
        return w / w.sum()
    if shape == "linear":
        return np.full(horizon, 1.0 / horizon)
    if shape == "gap":
        w = np.zeros(horizon)
        w[0] = 1.0
        return w
    # v_shape: the whole move down by the middle, then half of it back.
    mid = max(horizon // 2, 1)
    w = np.zeros(horizon)
    w[:mid] = 1.0 / mid
    w[mid:] = -0.5 / max(horizon - mid, 1)
    return w / w.sum()


def _standardised_noise(rng: np.random.Generator, n: int, block: int = 21) -> np.ndarray:
    """Gaussian noise with mean 0 and std 1 in every 21-day block counted back from the end.

    One random path would otherwise show a different move and volatility than the scenario
    describes (a calm path that happens to fall 5 % in its last month is not calm).
    """
    blocks = -(-n // block)
    eps = rng.standard_normal((blocks, block))
    eps = (eps - eps.mean(axis=1, keepdims=True)) / eps.std(axis=1, ddof=1, keepdims=True)
    return eps.ravel()[-n:]


@dataclass(frozen=True)
class Baseline:
    """The calm state a scenario path starts from: the calibration's median entity.

    Scenarios describe moves relative to normal; starting from the median volatility and
    dollar volume keeps level and size from separating scenarios from entity states.
    """

    vol: float = BASE_VOL
    dollar_volume: float = 1e7


def synthesise_path(sc: Scenario, baseline: Baseline) -> pl.DataFrame:
    """A calm baseline then the shock, as a prices frame for the feature code.

    The path is deterministic (seeded by the scenario id).
    """
    rng = np.random.default_rng(_seed(sc.id))
    h = sc.horizon_days
    n = BASELINE_DAYS + h
    dollar_volume = baseline.dollar_volume
    daily = baseline.vol / math.sqrt(252.0)
    sigma = np.full(n, daily)
    sigma[BASELINE_DAYS:] *= sc.vol_multiplier
    move = math.log1p(sc.price_shock)
    drift = np.full(n, 0.04 / 252)
    drift[BASELINE_DAYS:] = move * _shape_weights(sc.shape, h)
    ret = drift + sigma * _standardised_noise(rng, n)
    close = 100.0 * np.exp(np.cumsum(ret))
    vol_mult = np.ones(n)
    vol_mult[BASELINE_DAYS:] = sc.volume_multiplier
    volume = (dollar_volume / close) * np.exp(0.25 * rng.standard_normal(n)) * vol_mult
    zero = np.zeros(n, dtype=bool)
    zero[BASELINE_DAYS:] = rng.random(h) < sc.zero_volume_share
    volume = np.where(zero, 0.0, np.round(volume, 2))
    prev = np.concatenate([[close[0]], close[:-1]])
    opened = prev * np.exp(0.2 * sigma * rng.standard_normal(n))
    high = np.maximum(opened, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal(n)))
    low = np.minimum(opened, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(n)))
    has_spread = sc.spread_shock_bps != 0.0
    spread = BASE_SPREAD + sc.spread_shock_bps * np.concatenate(
        [np.zeros(BASELINE_DAYS), np.cumsum(_shape_weights(sc.shape, h))]
    )
    dates = pl.date_range(PATH_END - dt.timedelta(days=n - 1), PATH_END, eager=True)
    return pl.DataFrame(
        {
            ENTITY: sc.id,
            DATE: dates,
            "close": close,
            "volume": volume,
            "high": high,
            "low": low,
            "spread_bps": spread if has_spread else [None] * n,
        },
        schema=PRICE_SCHEMA,
    )


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


def synthetic_features(library: tuple[Scenario, ...], baseline: Baseline) -> pl.DataFrame:
    """Features at the end of every scenario's synthetic path: the SAME feature code as states."""
    from stabfrag.features import compute_features

    paths = pl.concat([synthesise_path(sc, baseline) for sc in library])
    order = {sc.id: i for i, sc in enumerate(library)}
    paths = paths.sort(ENTITY, DATE)
    last = paths.with_row_index("i").group_by(ENTITY).agg(pl.col("i").max())["i"].sort()
    feats = compute_features(paths, rows=last.to_numpy())
    return (
        feats.with_columns(
            pl.col(ENTITY).alias("scenario_id"),
            pl.col(ENTITY).replace_strict(order, return_dtype=pl.Int64).alias("_order"),
            pl.lit("synthetic").alias("path_source"),
        )
        .sort("_order")
        .drop("_order")
    )


def reference_features(
    library: tuple[Scenario, ...], prices: pl.DataFrame, *, max_staleness_days: int = 7
) -> pl.DataFrame:
    """Features of each historical scenario's reference entity as of its episode end.

    `prices` is validated and sorted. A scenario qualifies when its reference covers the
    whole episode (a price on or before the start, one within the staleness limit of the
    end) and has a full 63-return window at the end.
    """
    from stabfrag.features import compute_features

    hist = [s for s in library if s.kind == "historical" and s.reference_entity]
    if not hist or prices.height == 0:
        return pl.DataFrame()
    episodes = pl.DataFrame(
        {
            "scenario_id": [s.id for s in hist],
            ENTITY: [s.reference_entity for s in hist],
            "episode_start": [s.episode_start for s in hist],
            "episode_end": [s.episode_end for s in hist],
        }
    ).sort("episode_end")
    indexed = prices.with_row_index("_pos").select(
        "_pos",
        ENTITY,
        DATE,
        pl.col(DATE).min().over(ENTITY).alias("_first"),
        (pl.int_range(pl.len()).over(ENTITY) + 1).alias("_obs"),
    )
    matched = episodes.join_asof(
        indexed.sort(DATE),
        left_on="episode_end",
        right_on=DATE,
        by=ENTITY,
        strategy="backward",
        check_sortedness=False,
    ).filter(
        pl.col("_pos").is_not_null()
        & (pl.col("_first") <= pl.col("episode_start"))
        & (pl.col(DATE) >= pl.col("episode_end") - pl.duration(days=max_staleness_days))
        & (pl.col("_obs") >= 64)
    )
    if matched.height == 0:
        return pl.DataFrame()
    feats = compute_features(prices, rows=matched["_pos"].to_numpy())
    return (
        matched.select("scenario_id", "_pos")
        .join(feats, on="_pos", how="left")
        .with_columns(pl.format("reference:{}", pl.col(ENTITY)).alias("path_source"))
    )
