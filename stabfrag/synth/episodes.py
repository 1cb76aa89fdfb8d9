"""A generated market's own episodes as historical scenarios: the ground truth of *which*.

Every market-wide episode of a market with factor series (`generate --factors`) becomes a
historical scenario of the library format, with the moves it was made with and its
shock type's factor series as its reference; the labels name it as the episode's
`scenario_id`. A build given the library (`--scenarios OUT/scenarios`) then holds each
past episode, and `evaluate`'s episode match says how often a stressed state is nearest
its own episode, where the answer is known.
"""

from __future__ import annotations

import datetime as dt
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.atomic import make_folder, write_atomic
from stabfrag.config import packaged
from stabfrag.synth.shocks import (
    CREDIT_SPREAD_BPS,
    FACTOR_IDS,
    FACTORS,
    SHOCK_TYPES,
    SIGNATURES,
)

# The mean volatility and volume multipliers of the generator's own crashes and spikes
# (stabfrag.synth._episodes draws them: crash 2.5-4.0 and 2-3, spike 3.0 and 2-3).
CRISIS_MULTIPLIERS = {"CRASH": (3.25, 2.5), "VOL_SPIKE": (3.0, 2.5)}
# Each shock type's reference series: the factor its episodes move most (the shipped
# library's equity episodes are an index's, a credit crisis a high-yield fund's).
REFERENCE = {
    "EQUITY_CRASH": "equity",
    "VOL_SPIKE": "equity",
    "LIQUIDITY_DRYUP": "equity",
    "CREDIT_SPREAD": "credit",
    "RATES_SHOCK": "rates",
    "FX_CRISIS": "fx",
}
SPREAD_PER_LOSS = 6.0  # shocks.factor_frames: spread = 350 bps x (1 + 6 x the credit fund's fall)
LIBRARY_FILE = "generated.toml"
MAX_HORIZON = 250  # the library format's longest horizon, trading days


def market_episodes(events: pl.DataFrame) -> pl.DataFrame:
    """Each market episode of a generated panel and the moves it was made with, in the
    scenario library's terms (stabfrag.synth.shocks.SIGNATURES): event_id, event_type,
    shock_type, start_date, end_date, magnitude, each factor's fractional move (FACTORS)
    and the volatility and volume multipliers (vol, volume)."""
    episodes = (
        events.filter(pl.col("scope") == "MARKET")
        .group_by("event_id", "event_type")
        .agg(pl.col("start_date").min(), pl.col("end_date").max(), pl.col("magnitude").first())
        .sort("start_date", "event_id")
    )
    rows = []
    for kind, magnitude in episodes.select("event_type", "magnitude").iter_rows():  # episodes
        sig = SIGNATURES[kind]
        # The panel's own crashes and spikes: the market's fall is the event's magnitude,
        # the factors move as listed, volatility and volume as the generator makes them
        # on average; a new kind's size is magnitude / |equity|.
        scale = magnitude / abs(sig.equity) if sig.equity else 1.0
        equity = sig.equity * scale if sig.equity else -magnitude
        vol, volume = CRISIS_MULTIPLIERS.get(kind, (sig.vol, sig.volume))
        moves = {"equity": equity, **{k: v * scale for k, v in sig.moves.items()}}
        rows.append([moves.get(f, 0.0) for f in FACTORS] + [vol, volume, scale])
    values = np.array(rows, dtype=np.float64).reshape(-1, len(FACTORS) + 3)
    names = (*FACTORS, "vol", "volume", "scale")
    return episodes.with_columns(
        pl.col("event_type").replace_strict(SHOCK_TYPES).alias("shock_type"),
        *(pl.Series(name, values[:, i]) for i, name in enumerate(names)),
    )


def deepest_crash(events: pl.DataFrame) -> tuple[str, dt.date, dt.date] | None:
    """The market's deepest crash: its event id, first and last day (None: it has none)."""
    crashes = market_episodes(events).filter(pl.col("shock_type") == "EQUITY_CRASH")
    if crashes.height == 0:
        return None
    deepest = crashes.sort("magnitude", "event_id", descending=[True, False])
    event_id, start, end = deepest.select("event_id", "start_date", "end_date").row(0)
    return event_id, start, end


def scenario_toml(episodes: pl.DataFrame) -> str:
    """The episodes (market_episodes) as historical scenarios in the library's TOML."""
    parts = [
        "# This generated market's own episodes, written by `stabfrag generate --factors`:",
        "# each is known from its end, on its reference factor's real path.",
    ]
    for ep in episodes.iter_rows(named=True):  # a dozen episodes, not data rows
        role = REFERENCE[ep["shock_type"]]
        # A crash or spike, or a new kind at least its typical size, is a HIGH episode.
        severity = "HIGH" if ep["scale"] >= 1.0 else "MEDIUM"
        days = int(np.busday_count(ep["start_date"], ep["end_date"])) + 1
        spread = -ep["credit"] * CREDIT_SPREAD_BPS * SPREAD_PER_LOSS
        shocks = ", ".join(f"{f} = {ep[f]:.4f}" for f in FACTORS)
        parts.append(
            "\n".join(
                [
                    "",
                    "[[scenario]]",
                    f'id = "{ep["event_id"]}"',
                    'kind = "historical"',
                    f'shock_type = "{ep["shock_type"]}"',
                    f'severity = "{severity}"',
                    f'description = "Generated {ep["event_type"].lower()} episode"',
                    f'reference_entity = "{FACTOR_IDS[role]}"',
                    f"episode_start = {ep['start_date']}",
                    f"episode_end = {ep['end_date']}",
                    f"price_shock = {ep[role]:.4f}",
                    f"horizon_days = {min(max(days, 1), MAX_HORIZON)}",
                    f"vol_multiplier = {ep['vol']:.4f}",
                    f"volume_multiplier = {ep['volume']:.4f}",
                    f"spread_shock_bps = {spread:.1f}",
                    f'source = "generator event {ep["event_id"]}"',
                    f"factor_shocks = {{ {shocks} }}",
                ]
            )
        )
    return "\n".join(parts) + "\n"


def write_library(events: pl.DataFrame, folder: Path) -> Path:
    """`folder` as a scenario library: the shipped library's files and the market's own
    episodes (LIBRARY_FILE), for `--scenarios folder`."""
    make_folder(folder)
    for path in sorted(packaged("scenario_library").glob("*.toml")):  # the shipped library
        write_atomic(folder / path.name, partial(shutil.copyfile, path))
    text = scenario_toml(market_episodes(events))
    write_atomic(folder / LIBRARY_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return folder
