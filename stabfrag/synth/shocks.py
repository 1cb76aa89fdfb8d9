"""Market-wide episodes of every shock type, with the cross-asset factor series that tell
them apart (`generate --factors`).

From one equity price series a credit crisis, a rates shock and an equity crash look
alike; the markets' own factors do not. A panel with factors gets:
- five factor series, entities of their own: an equity index, a long bond fund (rates),
  a high-yield credit fund (with its spread), the dollar (fx) and a commodity;
- between the panel's crashes and volatility spikes, market-wide episodes of the other
  shock types of the scenario library: credit, rates, FX and liquidity crises. Each has a
  signature: how far each factor moves over the episode, how much equity volatility and
  volume change, and who among the entities is hit harder (issuers in a credit crisis,
  rate-sensitive sectors in a rates shock, non-US names in an FX crisis, the least traded
  names in a liquidity crisis);
- the crashes and spikes keep their equity paths and get factor paths too (bonds rally
  in a crash, credit falls with it).

The draws come from their own generator, so a panel without factors is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.schema import DATE, ENTITY
from stabfrag.synth.parts import DAILY, Events, Universe, front_loaded, market_events

FACTOR_STREAM = 17  # the factor generator's stream: default_rng([seed, 17])
FACTORS = ("equity", "rates", "credit", "fx", "commodity")
FACTOR_IDS = {f: f"FACTOR_{f.upper()}.US" for f in FACTORS}
# Calm annualised volatility of each factor (equity: the panel's own market factor).
CALM_VOL = {"rates": 0.07, "credit": 0.05, "fx": 0.07, "commodity": 0.15}
CREDIT_BETA = 0.25  # credit's calm exposure to equity returns
RATE_SECTORS = (0, 1, 2)  # sectors twice as sensitive to rates (utilities, property, banks)
CREDIT_SPREAD_BPS = 350.0


@dataclass(frozen=True)
class Signature:
    """What an episode of one kind does: each factor's cumulative log move, equity
    volatility and volume multipliers, and the equity drop of an average entity."""

    shock_type: str  # the scenario library's shock type
    moves: dict[str, float]  # cumulative move of each factor but equity over the episode
    vol: float = 1.0  # multiplier of the entities' volatility (new kinds)
    volume: float = 1.0  # multiplier of the market's volume (new kinds)
    equity: float = 0.0  # the average entity's move (new kinds)
    length: tuple[int, int] = (0, 0)  # the episode's length in trading days: [lo, hi)


SIGNATURES = {
    # The panel's own crashes and spikes keep their equity paths; they add factor moves.
    "CRASH": Signature(
        "EQUITY_CRASH",
        moves={"rates": 0.08, "credit": -0.12, "fx": 0.04, "commodity": -0.10},
    ),
    "VOL_SPIKE": Signature(
        "VOL_SPIKE",
        moves={"rates": 0.01, "credit": -0.02, "fx": 0.01, "commodity": -0.02},
    ),
    "CREDIT_CRISIS": Signature(
        "CREDIT_SPREAD",
        moves={"rates": 0.02, "credit": -0.16, "fx": 0.02, "commodity": -0.04},
        vol=1.8,
        volume=1.5,
        equity=-0.10,
        length=(30, 60),
    ),
    "RATES_SHOCK": Signature(
        "RATES_SHOCK",
        moves={"rates": -0.14, "credit": -0.06, "fx": 0.03, "commodity": -0.05},
        vol=1.5,
        volume=1.3,
        equity=-0.07,
        length=(20, 50),
    ),
    "FX_CRISIS": Signature(
        "FX_CRISIS",
        moves={"rates": 0.01, "credit": -0.04, "fx": 0.12, "commodity": -0.09},
        vol=1.6,
        volume=1.4,
        equity=-0.05,
        length=(15, 40),
    ),
    "MARKET_LIQUIDITY": Signature(
        "LIQUIDITY_DRYUP",
        moves={"rates": 0.0, "credit": -0.05, "fx": 0.01, "commodity": -0.02},
        vol=1.7,
        volume=0.35,
        equity=-0.06,
        length=(20, 45),
    ),
}
NEW_KINDS = ("CREDIT_CRISIS", "RATES_SHOCK", "FX_CRISIS", "MARKET_LIQUIDITY")
# Each market episode kind -> the scenario shock type its states should be near.
SHOCK_TYPES = {kind: sig.shock_type for kind, sig in SIGNATURES.items()}


@dataclass(frozen=True)
class Shocks:
    """The episodes of a panel with factors: the panel's own crises and the new ones."""

    rng: np.random.Generator
    crises: Events  # the panel's crashes and spikes (dicts with kind, start, length)
    added: Events  # the new episodes, same form

    def apply(
        self, u: Universe, ret: np.ndarray, sigma: np.ndarray, volume_mult: np.ndarray
    ) -> Events:
        """Lay the new episodes into the entities' returns, volatility and the market's
        volume (in place); return their market events."""
        n, t = ret.shape
        for ep in self.added:
            sig = SIGNATURES[ep["kind"]]
            span = slice(ep["start"], ep["start"] + ep["length"])
            hit = exposure(ep["kind"], u) * self.rng.uniform(0.7, 1.3, n)
            path = np.log(1 + sig.equity * ep["severity"]) * front_loaded(ep["length"])
            noise = self.rng.standard_normal((n, ep["length"]))
            extra = np.sqrt(sig.vol**2 - 1.0) * sigma[:, span] * hit[:, None]
            ret[:, span] += hit[:, None] * path[None, :] + extra * noise
            sigma[:, span] = np.sqrt(sigma[:, span] ** 2 + extra**2)
            volume_mult[span] *= sig.volume
        magnitudes = [abs(SIGNATURES[ep["kind"]].equity) * ep["severity"] for ep in self.added]
        return market_events(self.added, magnitudes, first=len(self.crises))

    def factor_returns(self, market_ret: np.ndarray) -> dict[str, np.ndarray]:
        """Each factor's daily log returns: calm noise, and every episode's move with
        volatility that grows with the move (the equity factor is the panel's market
        factor, which holds the crashes and spikes already)."""
        t = len(market_ret)
        z = self.rng.standard_normal((len(CALM_VOL), t))
        out = {"equity": market_ret.copy()}
        calm = {"equity": float(market_ret.std()) / DAILY, **CALM_VOL}
        for i, (name, vol) in enumerate(CALM_VOL.items()):
            out[name] = vol * DAILY * z[i]
        out["credit"] += CREDIT_BETA * (market_ret - market_ret.mean())
        episodes = [(ep, False) for ep in self.crises] + [(ep, True) for ep in self.added]
        for ep, new in episodes:
            sig = SIGNATURES[ep["kind"]]
            span = slice(ep["start"], ep["start"] + ep["length"])
            shape = front_loaded(ep["length"])
            scale = ep.get("severity", 1.0)
            moves = {**sig.moves, **({"equity": sig.equity} if new else {})}
            noise = self.rng.standard_normal((len(moves), ep["length"]))
            for j, (name, move) in enumerate(moves.items()):
                extra = 4.0 * abs(move * scale) * calm[name] * DAILY
                out[name][span] += np.log1p(move * scale) * shape + extra * noise[j]
        return out


def exposure(kind: str, u: Universe) -> np.ndarray:
    """How hard each entity is hit by an episode of `kind`, around 1 on average."""
    n = len(u.ids)
    base = np.ones(n)
    if kind == "CREDIT_CRISIS":
        base = np.where(u.kind == "ISSUER", 2.5, 0.8)
    elif kind == "RATES_SHOCK":
        base = np.where(np.isin(u.sector, RATE_SECTORS), 2.0, 0.7)
    elif kind == "FX_CRISIS":
        base = np.where(u.region == "US", 0.4, 1.6)
    elif kind == "MARKET_LIQUIDITY":
        base = np.where(u.small, 2.5, 0.7)
    return np.where(u.kind == "MARKET", 1.0, base)


def shock_episodes(rng: np.random.Generator, crises: Events, t: int) -> Shocks:
    """New episodes midway between consecutive crises, cycling through the new kinds."""
    added: Events = []
    for i, (a, b) in enumerate(zip(crises, crises[1:], strict=False)):
        kind = NEW_KINDS[i % len(NEW_KINDS)]
        lo, hi = SIGNATURES[kind].length
        length = int(rng.integers(lo, hi))
        gap_start, gap_end = a["start"] + a["length"], b["start"]
        start = (gap_start + gap_end - length) // 2
        if start - gap_start < 60 or gap_end - (start + length) < 60 or start + length >= t:
            continue  # too close to a crisis to be told apart
        added.append(
            {"kind": kind, "start": start, "length": length, "severity": rng.uniform(0.8, 1.3)}
        )
    return Shocks(rng, crises, added)


def factor_frames(
    shocks: Shocks, dates: np.ndarray, market_ret: np.ndarray
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The factor series as price rows and entity rows (type MARKET, region US)."""
    returns = shocks.factor_returns(market_ret)
    rng = shocks.rng
    ids = np.array([FACTOR_IDS[f] for f in FACTORS])
    ret = np.stack([returns[f] for f in FACTORS])
    close = 100.0 * np.exp(np.cumsum(ret, axis=1))
    move = np.abs(ret) + 0.002
    high = close * np.exp(move * rng.uniform(0.2, 1.0, ret.shape))
    low = close * np.exp(-move * rng.uniform(0.2, 1.0, ret.shape))
    volume = np.round(1e7 * np.exp(0.3 * rng.standard_normal(ret.shape)) * (1 + 20 * move))
    peak = np.maximum.accumulate(close[2])
    spread = np.full(ret.shape, np.nan)
    spread[2] = CREDIT_SPREAD_BPS * (1.0 + 6.0 * (1.0 - close[2] / peak))
    k, t = ret.shape
    prices = pl.DataFrame(
        {
            ENTITY: np.repeat(ids, t),
            DATE: np.tile(dates, k),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "spread_bps": spread.ravel(),
        }
    ).with_columns(pl.col("spread_bps").fill_nan(None))
    entities = pl.DataFrame(
        {
            ENTITY: ids,
            "entity_type": ["MARKET"] * k,
            "region": ["US"] * k,
            "sector": np.full(k, -1, dtype=np.int32),
            "issuer_id": pl.Series([None] * k, dtype=pl.String),
        }
    )
    return prices, entities
