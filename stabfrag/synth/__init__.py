"""The synthetic market generator: factors, clustered volatility, crises, ragged histories.

Everything is an array over (entity, day) built with numpy at once; the only Python
loops run over a handful of episodes, never over entities or days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.atomic import write_atomic
from stabfrag.schema import DATE, ENTITY, date_span
from stabfrag.synth.episodes import write_library
from stabfrag.synth.parts import (
    DAILY,
    Events,
    Universe,
    entity_events,
    front_loaded,
    market_events,
)
from stabfrag.synth.shocks import (
    FACTOR_IDS,
    FACTOR_STREAM,
    SHOCK_TYPES,
    factor_frames,
    shock_episodes,
)
from stabfrag.synth.structure import STRUCTURE_STREAM, structure_of

END_DATE = dt.date(2024, 12, 31)
REGIONS = np.array(["US", "EU", "UK", "JP"])
SECTORS = 11


@dataclass(frozen=True)
class Market:
    """A generated panel: prices (long), entity metadata and the ground-truth events."""

    prices: pl.DataFrame
    entities: pl.DataFrame
    events: pl.DataFrame
    traits: pl.DataFrame | None = None  # structural panels: each entity's true structure
    fundamentals: pl.DataFrame | None = None  # structural panels: reported, point in time


def trading_days(n: int, end: dt.date = END_DATE) -> np.ndarray:
    """The last n weekdays up to `end`, as numpy datetime64[D]."""
    span = int(n * 7 / 5) + 14
    days = np.arange(np.datetime64(end) - span + 1, np.datetime64(end) + 1)
    weekdays = days[np.is_busday(days)]
    return weekdays[-n:]


def clustered(
    rng: np.random.Generator, shape: tuple[int, int], phi: float, scale: float
) -> np.ndarray:
    """A stationary AR(1)-like log-volatility field, made by FFT convolution with phi^j."""
    rows, days = shape
    lag = min(400, days)
    kernel = phi ** np.arange(lag)
    noise = rng.standard_normal((rows, days + lag))
    size = days + 2 * lag
    out = np.fft.irfft(np.fft.rfft(noise, size, axis=1) * np.fft.rfft(kernel, size), size, axis=1)
    field = out[:, lag : lag + days]
    return field * scale * np.sqrt(1 - phi**2)


def _episodes(rng: np.random.Generator, days: int) -> list[dict[str, Any]]:
    """Market-wide crises at spread-out positions: crashes and volatility spikes."""
    count = max(1, days // 420)
    slots = np.linspace(0.2, 0.95, count)
    out: list[dict[str, Any]] = []
    for i, pos in enumerate(slots):
        kind = "CRASH" if i % 2 == 0 else "VOL_SPIKE"
        length = int(rng.integers(25, 60)) if kind == "CRASH" else int(rng.integers(10, 25))
        start = int(pos * days) - length
        out.append(
            {
                "kind": kind,
                "start": max(start, 260),
                "length": length,
                "drop": float(rng.uniform(0.25, 0.45)) if kind == "CRASH" else 0.05,
                "vol_mult": float(rng.uniform(2.5, 4.0)) if kind == "CRASH" else 3.0,
                "volume_mult": float(rng.uniform(2.0, 3.0)),
            }
        )
    return [e for e in out if e["start"] + e["length"] < days]


def _universe(rng: np.random.Generator, n: int) -> Universe:
    sector = rng.integers(0, SECTORS, n)
    region = REGIONS[rng.integers(0, len(REGIONS), n)]
    kind = np.where(rng.random(n) < 0.15, "ISSUER", "INSTRUMENT")
    kind[: max(1, n // 100)] = "MARKET"
    ids = np.char.add(np.char.add("E", np.char.zfill(np.arange(n).astype(str), 5)), ".")
    ids = np.char.add(ids, region)
    base_volume = 10 ** rng.uniform(2.5, 7.5, n)  # shares: several orders of magnitude
    small = base_volume < np.quantile(base_volume, 0.2)
    return Universe(ids, sector, region, kind, base_volume, small)


def _market_regime(
    rng: np.random.Generator, m_logvol: np.ndarray, t: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Events]:
    """Market volatility, volume multiplier and drift with the crises laid in."""
    market_vol = 0.15 * np.exp(m_logvol)
    volume_mult = np.ones(t)
    drift = np.full(t, 0.06 / 252)
    crises = _episodes(rng, t)
    for ep in crises:
        sl = slice(ep["start"], ep["start"] + ep["length"])
        market_vol[sl] *= ep["vol_mult"]
        volume_mult[sl] *= ep["volume_mult"]
        drift[sl] += np.log(1 - ep["drop"]) * front_loaded(ep["length"])
        # The aftermath stays nervous for a while.
        tail = slice(ep["start"] + ep["length"], ep["start"] + ep["length"] + 40)
        market_vol[tail] *= np.linspace(ep["vol_mult"] * 0.6, 1.0, len(market_vol[tail]))
    return market_vol, volume_mult, drift, crises


def _returns(
    rng: np.random.Generator,
    u: Universe,
    logvols: tuple[np.ndarray, np.ndarray],
    market_vol: np.ndarray,
    drift: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily log returns from market, sector and idiosyncratic factors, their sigma and the
    market factor's own daily log return."""
    s_logvol, i_logvol = logvols
    n, t = len(u.ids), len(drift)
    zm = rng.standard_normal(t)
    zs = rng.standard_normal((SECTORS, t))
    zi = rng.standard_normal((n, t))
    beta = np.where(u.kind == "MARKET", 1.0, rng.uniform(0.5, 1.5, n))
    sector_beta = np.where(u.kind == "MARKET", 0.1, rng.uniform(0.3, 1.0, n))
    idio = np.where(u.kind == "MARKET", 0.03, 0.12 + 0.25 * rng.random(n))
    crisis_idio = 1.0 + 0.5 * (market_vol / market_vol.mean() - 1).clip(0)
    market_ret = drift + market_vol * DAILY * zm
    ret = (
        drift[None, :]
        + beta[:, None] * market_vol[None, :] * DAILY * zm[None, :]
        + sector_beta[:, None] * (0.10 * np.exp(s_logvol) * DAILY * zs)[u.sector]
        + (idio[:, None] * np.exp(i_logvol) * crisis_idio[None, :]) * DAILY * zi
    )
    sigma = (
        np.sqrt(
            (beta[:, None] * market_vol[None, :]) ** 2 + (idio[:, None] * np.exp(i_logvol)) ** 2
        )
        * DAILY
    )
    return ret, sigma, market_ret


def _market_events(crises: Events) -> Events:
    return market_events(crises, [ep["drop"] for ep in crises])


def _blowups(
    rng: np.random.Generator,
    u: Universe,
    ret: np.ndarray,
    sigma: np.ndarray,
    chance: np.ndarray | float = 0.03,
    prefix: str = "BLOWUP",
) -> Events:
    """Idiosyncratic blow-ups: a 30-70% collapse over a few days, then high vol; `chance`
    is each entity's probability over the panel.

    Short panels (under 400 days) get no entity episodes: they need a year of history first.
    """
    n, t = ret.shape
    blow = np.flatnonzero((rng.random(n) < chance) & (t > 400))
    blow_day = rng.integers(300, t - 10, len(blow))
    blow_len = rng.integers(1, 5, len(blow))
    blow_drop = rng.uniform(0.3, 0.7, len(blow))
    if len(blow):
        offs = np.arange(5)
        mask = offs[None, :] < blow_len[:, None]
        rows = np.repeat(blow, mask.sum(1))
        cols = (blow_day[:, None] + offs[None, :])[mask]
        ret[rows, cols] += np.repeat(np.log(1 - blow_drop) / blow_len, blow_len)
        after = np.arange(60)
        r2 = np.repeat(blow, 60)
        c2 = np.minimum((blow_day[:, None] + after[None, :]).ravel(), t - 1)
        ret[r2, c2] *= 2.5
        sigma[r2, c2] *= 2.5
    return entity_events("BLOWUP", prefix, u.ids[blow], blow_day, blow_len, blow_drop)


def _volume(
    rng: np.random.Generator,
    u: Universe,
    ret: np.ndarray,
    sigma: np.ndarray,
    volume_mult: np.ndarray,
) -> tuple[np.ndarray, Events]:
    """Volume: level x noise x reaction to moves x market surges, with liquidity dry-ups in
    small names (volume collapses, zero-volume days appear)."""
    n, t = ret.shape
    vol_noise = clustered(rng, (n, t), 0.9, 0.35) + 0.25 * rng.standard_normal((n, t))
    volume = (
        u.base_volume[:, None]
        * np.exp(vol_noise)
        * (1.0 + 2.0 * np.abs(ret) / sigma.clip(1e-6))
        * volume_mult[None, :]
    )
    dry = np.flatnonzero(u.small & (rng.random(n) < 0.3) & (t > 400))
    dry_start = rng.integers(280, t - 130, len(dry))
    dry_len = rng.integers(40, 120, len(dry))
    if len(dry):
        span = np.arange(t)[None, :]
        in_dry = (span >= dry_start[:, None]) & (span < (dry_start + dry_len)[:, None])
        volume[dry] = np.where(in_dry, volume[dry] * 0.03, volume[dry])
        zero = in_dry & (rng.random((len(dry), t)) < 0.35)
        volume[dry] = np.where(zero, 0.0, volume[dry])
        ret[dry] = np.where(in_dry, ret[dry] * 1.6, ret[dry])
    events = entity_events("LIQUIDITY_DRYUP", "DRYUP", u.ids[dry], dry_start, dry_len, 0.97)
    volume = np.where(u.small[:, None] & (rng.random((n, t)) < 0.01), 0.0, np.round(volume))
    return volume, events


def _bars(
    rng: np.random.Generator, u: Universe, ret: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Close, high and low paths, and credit spreads for issuers (wider with volatility and
    drawdown)."""
    n, t = ret.shape
    close = 20.0 * np.exp(rng.uniform(0, 3, n))[:, None] * np.exp(np.cumsum(ret, axis=1))
    prev = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    opened = prev * np.exp(0.2 * sigma * rng.standard_normal((n, t)))
    high = np.maximum(opened, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal((n, t))))
    low = np.minimum(opened, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal((n, t))))
    peak = np.maximum.accumulate(close, axis=1)
    spread = (
        np.asarray(rng.uniform(80, 400, n))[:, None]
        * (sigma / np.median(sigma, axis=1, keepdims=True)) ** 0.8
        * (1.0 + 3.0 * (1.0 - close / peak))
    )
    spread = np.where((u.kind == "ISSUER")[:, None], spread, np.nan)
    return close, high, low, spread


def _listings(
    rng: np.random.Generator, u: Universe, t: int
) -> tuple[np.ndarray, np.ndarray, Events]:
    """Ragged histories: late listings and early delistings (first and last day indices)."""
    n = len(u.ids)
    first = np.where(rng.random(n) < 0.15, rng.integers(0, int(t * 0.8), n), 0)
    last = np.where(rng.random(n) < 0.05, rng.integers(int(t * 0.3), t, n), t - 1)
    last = np.maximum(last, np.minimum(first + 30, t - 1))
    listed, delisted = np.flatnonzero(first > 0), np.flatnonzero(last < t - 1)
    ones = np.ones(len(listed) + len(delisted), dtype=np.int64)
    events = entity_events(
        "LISTING", "LISTING", u.ids[listed], first[listed], ones[: len(listed)], None
    ) + entity_events(
        "DELISTING", "DELISTING", u.ids[delisted], last[delisted], ones[len(listed) :], None
    )
    return first, last, events


def _events_frame(
    events: Events, dates: np.ndarray, u: Universe, first: np.ndarray, last: np.ndarray
) -> pl.DataFrame:
    """One row per (event, entity hit): market-wide events hit every entity listed over them."""
    ev = pl.DataFrame(
        {
            "event_id": [e["event_id"] for e in events],
            "event_type": [e["event_type"] for e in events],
            "start_date": dates[[e["start"] for e in events]] if events else [],
            "end_date": dates[[e["end"] for e in events]] if events else [],
            "magnitude": [e["magnitude"] for e in events],
            "scope": ["MARKET" if e["entities"] is None else "ENTITY" for e in events],
            "_entities": [e["entities"] for e in events],
        },
        # Typed even when no event happened (a short panel): readers expect these types.
        schema_overrides={
            "event_id": pl.String,
            "event_type": pl.String,
            "start_date": pl.Date,
            "end_date": pl.Date,
            "magnitude": pl.Float64,
            "scope": pl.String,
            "_entities": pl.List(pl.String),
        },
    )
    spans = pl.DataFrame({ENTITY: u.ids, "_first": dates[first], "_last": dates[last]})
    market = (
        ev.filter(pl.col("scope") == "MARKET")
        .drop("_entities")
        .join(spans, how="cross")
        .filter(
            (pl.col("_first") <= pl.col("start_date")) & (pl.col("_last") >= pl.col("end_date"))
        )
        .drop("_first", "_last")
    )
    single = (
        ev.filter(pl.col("scope") == "ENTITY").explode("_entities").rename({"_entities": ENTITY})
    )
    columns = ["event_id", "event_type", "scope", ENTITY, "start_date", "end_date", "magnitude"]
    return pl.concat([market.select(columns), single.select(columns)]).sort(
        "start_date", "event_id", ENTITY
    )


def _prices_frame(
    ids: np.ndarray,
    dates: np.ndarray,
    bars: dict[str, np.ndarray],
    first: np.ndarray,
    last: np.ndarray,
) -> pl.DataFrame:
    """The long prices table: each entity's bars from its listing to its last day."""
    t = len(dates)
    alive = (np.arange(t)[None, :] >= first[:, None]) & (np.arange(t)[None, :] <= last[:, None])
    ent_idx, day_idx = np.nonzero(alive)
    return pl.DataFrame(
        {
            ENTITY: ids[ent_idx],
            DATE: dates[day_idx],
            **{name: values[ent_idx, day_idx] for name, values in bars.items()},
        }
    ).with_columns(pl.col("spread_bps").fill_nan(None))


def _entities_frame(u: Universe) -> pl.DataFrame:
    """The entities table: type, region, sector and an issuer id for issuers."""
    return pl.DataFrame(
        {
            ENTITY: u.ids,
            "entity_type": u.kind,
            "region": u.region,
            "sector": u.sector.astype(np.int32),
        }
    ).with_columns(
        pl.when(pl.col("entity_type") == "ISSUER")
        .then(pl.format("ISS_{}", pl.col(ENTITY)))
        .alias("issuer_id")
    )


def generate(
    entities: int = 500,
    days: int = 2520,
    seed: int = 7,
    *,
    structural: bool = False,
    factors: bool = False,
) -> Market:
    """Generate a deterministic market of `entities` x `days` for a seed.

    Each step draws from the one generator in a fixed order, so a seed gives the same bytes.
    `structural` adds leveraged and inverse funds and balance-sheet leverage that makes
    entities likelier to be hit (see `_structure`); `factors` adds cross-asset factor
    series and market episodes of every shock type (see `shocks`). Their draws come from
    generators of their own, so the panel without them is unchanged.
    """
    rng = np.random.default_rng(seed)
    n, t = entities, days
    dates = trading_days(t)
    u = _universe(rng, n)
    # Volatility clustering: market, sector and idiosyncratic log-vol fields.
    m_logvol = clustered(rng, (1, t), 0.985, 0.35)[0]
    logvols = clustered(rng, (SECTORS, t), 0.98, 0.3), clustered(rng, (n, t), 0.97, 0.3)
    market_vol, volume_mult, drift, crises = _market_regime(rng, m_logvol, t)
    ret, sigma, market_ret = _returns(rng, u, logvols, market_vol, drift)
    events = _market_events(crises) + _blowups(rng, u, ret, sigma)
    structure = None
    if structural:
        structure = structure_of(np.random.default_rng([seed, STRUCTURE_STREAM]), u, crises)
        events += structure.apply(u, ret, sigma, market_ret, market_vol)
        events += _blowups(structure.rng, u, ret, sigma, structure.blowup_chance, "LEVERAGE")
    shocks = None
    if factors:
        shocks = shock_episodes(np.random.default_rng([seed, FACTOR_STREAM]), crises, t)
        events += shocks.apply(u, ret, sigma, volume_mult)
    volume, dry_events = _volume(rng, u, ret, sigma, volume_mult)
    close, high, low, spread = _bars(rng, u, ret, sigma)
    first, last, listing_events = _listings(rng, u, t)
    bars = {"close": close, "volume": volume, "high": high, "low": low, "spread_bps": spread}
    prices = _prices_frame(u.ids, dates, bars, first, last)
    entities_frame = _entities_frame(u)
    events_frame = _events_frame(events + dry_events + listing_events, dates, u, first, last)
    if shocks is not None:
        factor_prices, factor_entities = factor_frames(shocks, dates, market_ret)
        prices = pl.concat([prices, factor_prices.cast(prices.schema)])
        entities_frame = pl.concat([entities_frame, factor_entities.cast(entities_frame.schema)])
    if structure is None:
        return Market(prices=prices, entities=entities_frame, events=events_frame)
    return Market(
        prices=prices,
        entities=entities_frame,
        events=events_frame,
        traits=structure.traits(u),
        fundamentals=structure.fundamentals(u, close, dates, first, last),
    )


def inject_defects(prices: pl.DataFrame, seed: int = 7) -> pl.DataFrame:
    """Break rows in every way SPEC §2 names, add a duplicate and a young entity, shuffle."""
    rng = np.random.default_rng(seed + 1)
    n = prices.height
    picks = rng.choice(n, size=12, replace=False)
    edits: list[tuple[str, object]] = [
        ("close", float("nan")),
        ("close", float("inf")),
        ("close", 0.0),
        ("close", -5.0),
        ("volume", -100.0),
        ("high", -1.0),
        ("high", 1e-9),
        ("volume", float("inf")),
        ("entity_id", ""),
        ("entity_id", "X" * 65),
        ("close", None),
        ("low", 1e12),
    ]
    row = pl.int_range(pl.len())
    out = prices
    for pick, (col, value) in zip(picks, edits, strict=True):
        out = out.with_columns(
            pl.when(row == int(pick))
            .then(pl.lit(value, prices.schema[col]))
            .otherwise(pl.col(col))
            .alias(col)
        )
    duplicate = prices.slice(int(rng.integers(0, n)), 1)
    first = prices[ENTITY][0]
    young = (
        prices.filter(pl.col(ENTITY) == first)
        .head(20)
        .with_columns(pl.lit("YOUNG.US").alias(ENTITY))
    )
    out = pl.concat([out, duplicate, young])
    return out[rng.permutation(out.height)]


def write_market(market: Market, out: Path) -> dict[str, Path]:
    """Write prices, entities and events Parquet files, and labels.csv, into `out`."""
    paths = {name: out / f"{name}.parquet" for name in ("prices", "entities", "events")}
    # A market with factor series has a reference path for each of its episodes: they
    # become a scenario library, and the labels name each one's scenario.
    episodes = bool(market.entities[ENTITY].is_in(list(FACTOR_IDS.values())).any())
    labels = labels_from_events(
        market.events, *date_span(market.prices["date"]), scenarios=episodes
    )
    if episodes:
        paths["scenarios"] = write_library(market.events, out / "scenarios")
    paths["labels"] = out / "labels.csv"
    write_atomic(paths["labels"], labels.write_csv)
    write_atomic(
        paths["prices"],
        lambda p: market.prices.write_parquet(p, statistics=True, row_group_size=256_000),
    )
    write_atomic(paths["entities"], market.entities.write_parquet)
    write_atomic(paths["events"], market.events.write_parquet)
    for name, frame in (("traits", market.traits), ("fundamentals", market.fundamentals)):
        if frame is not None:
            paths[name] = out / f"{name}.parquet"
            write_atomic(paths[name], frame.write_parquet)
    return paths


# Generator event types -> the scenario shock type a state inside them should be near.
EVENT_SHOCK = {
    "CRASH": "EQUITY_CRASH",
    "VOL_SPIKE": "VOL_SPIKE",
    "BLOWUP": "EQUITY_CRASH",
    "CREDIT_STRESS": "CREDIT_SPREAD",
    "LIQUIDITY_DRYUP": "LIQUIDITY_DRYUP",
    **SHOCK_TYPES,
}


def labels_from_events(
    events: pl.DataFrame, first: dt.date, last: dt.date, *, scenarios: bool = False
) -> pl.DataFrame:
    """Stress and calm periods from the ground truth, in the `stabfrag evaluate` format.

    Stress: each market episode (every entity), each blow-up and dry-up (its entity).
    Calm: the market stretches starting 6 months after one market event and ending a
    month before the next, at least a month long. `scenarios`: each market episode names
    its own historical scenario (synth.episodes, whose ids are the event ids).
    """
    market = (
        events.filter(pl.col("scope") == "MARKET")
        .group_by("event_id", "event_type")
        .agg(pl.col("start_date").min(), pl.col("end_date").max())
        .sort("start_date")
    )
    stress_market = market.select(
        pl.col("start_date").alias("start"),
        pl.col("end_date").alias("end"),
        pl.lit("stress").alias("label"),
        pl.col("event_type").replace_strict(EVENT_SHOCK).alias("shock_type"),
        pl.lit(None, pl.String).alias(ENTITY),
        pl.col("event_id").alias("source"),
        (pl.col("event_id") if scenarios else pl.lit(None, pl.String)).alias("scenario_id"),
    )
    bounds = pl.DataFrame(
        {
            "start": [first, *(market["end_date"] + dt.timedelta(days=182)).to_list()],
            "end": [*(market["start_date"] - dt.timedelta(days=30)).to_list(), last],
        }
    )
    calm = bounds.filter(pl.col("end") - pl.col("start") >= pl.duration(days=30)).select(
        "start",
        "end",
        pl.lit("calm").alias("label"),
        pl.lit(None, pl.String).alias("shock_type"),
        pl.lit(None, pl.String).alias(ENTITY),
        pl.lit("no market event").alias("source"),
        pl.lit(None, pl.String).alias("scenario_id"),
    )
    own = events.filter(
        pl.col("event_type").is_in(["BLOWUP", "LIQUIDITY_DRYUP", "CREDIT_STRESS"])
    ).select(
        pl.col("start_date").alias("start"),
        (pl.col("end_date") + dt.timedelta(days=14)).alias("end"),
        pl.lit("stress").alias("label"),
        pl.col("event_type").replace_strict(EVENT_SHOCK).alias("shock_type"),
        ENTITY,
        pl.col("event_id").alias("source"),
        pl.lit(None, pl.String).alias("scenario_id"),
    )
    # An entity hit again while an earlier episode of its own still runs (a blow-up during
    # credit stress) keeps the earlier label: a state has one.
    own = own.sort(ENTITY, "start", "source").filter(
        pl.col("start") > pl.col("end").cum_max().shift(1).over(ENTITY).fill_null(dt.date.min)
    )
    return pl.concat([stress_market, calm, own]).sort("start", ENTITY, nulls_last=False)
