"""Feature set stab-features-v1 as data: one FeatureSpec per feature.

The registry is the feature set: the plan computes it, the encoder weighs and transforms
by it, the docs list it and the version hash reads it. Grids are generated, not copied.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import polars as pl

from stabfrag.features import exprs as fx
from stabfrag.schema import DATE, ENTITY

FEATURE_SET = "stab-features-v1"
ES_K = math.ceil(0.05 * 63)  # es95_63 averages the 4 smallest of 63 returns
LOOKBACK_ROWS = 252 + 42  # dd_252_lag42 reads the furthest back: 294 rows before the row

Builder = Callable[[], pl.Expr]

# What each group of features measures, and its votes in the encoder. Cosine similarity
# counts every coordinate, so the seven near-duplicate volatility levels would outvote the
# rest and a state's direction would mostly say how volatile the instrument always is (a 3x
# fund looks stressed when calm, a bond fund calm in a crash). A feature's weight is
# votes / sqrt(features in its group), so a group whose features agree adds votes^2 of
# squared norm whatever its size. Stress is a departure from the instrument's own normal:
# the volatility against its own year counts double, the level it always has half.
GROUP_VOTES: dict[str, float] = {
    "vol_level": 0.5,
    "vol_change": 2.0,
    "returns": 1.0,
    "tail": 1.0,
    "drawdown": 1.0,
    "liquidity": 1.0,
    "volume_surge": 1.0,
    "spread": 1.0,
}
WEIGHTING = "votes of the group / sqrt(features in the group)"


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: name, rows it needs, encoder transform and group, definition, builder."""

    name: str
    min_obs: int  # observations (prices) the entity needs before the value exists
    transform: str  # identity | log | log1p | slog1p
    doc: str
    group: str  # a key of GROUP_VOTES
    build: Builder = field(compare=False, repr=False)
    reads: tuple[str, ...] = ()  # features this one reads: computed in a second pass
    lag: int = 0  # how many rows before its own it reads them

    @property
    def votes(self) -> float:
        return GROUP_VOTES[self.group]

    def definition(self) -> dict[str, object]:
        """What the feature computes (the version hash covers exactly this)."""
        return {
            "name": self.name,
            "min_obs": self.min_obs,
            "transform": self.transform,
            "doc": self.doc,
        }


# min_obs: n returns need n + 1 prices; n prices need n.
FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    *[
        FeatureSpec(
            f"vol_{n}",
            n + 1,
            "log",
            f"std(r over the last {n} returns) * sqrt(252)",
            "vol_level",
            partial(fx.realised_vol, n),
        )
        for n in (21, 63, 252)
    ],
    FeatureSpec(
        "vol_ratio_21_252",
        253,
        "log",
        "vol_21 / vol_252",
        "vol_change",
        lambda: fx.positive_ratio(pl.col("vol_21"), pl.col("vol_252")),
        reads=("vol_21", "vol_252"),
    ),
    FeatureSpec(
        "downside_vol_63",
        64,
        "log",
        "sqrt(mean(min(r, 0)^2) over 63) * sqrt(252)",
        "vol_level",
        partial(fx.downside_vol, 63),
    ),
    *[
        FeatureSpec(
            f"ret_{n}",
            n + 1,
            "identity",
            f"ln(close_t / close_(t-{n}))",
            "returns",
            partial(fx.log_return, n),
        )
        for n in (21, 63)
    ],
    FeatureSpec(
        "worst_ret_63", 64, "identity", "min r over 63", "tail", partial(fx.worst_return, 63)
    ),
    FeatureSpec(
        "es95_63",
        64,
        "identity",
        f"mean of the {ES_K} smallest r over 63",
        "tail",
        partial(fx.expected_shortfall, 63, ES_K),
    ),
    FeatureSpec(
        "dd_252",
        252,
        "identity",
        "close_t / max(close over the last 252 prices) - 1",
        "drawdown",
        partial(fx.drawdown, 252),
    ),
    FeatureSpec(
        "max_dd_63",
        63,
        "identity",
        "min over s in the last 63 prices of close_s / max(close from window start to s) - 1",
        "drawdown",
        partial(fx.max_drawdown, 63),
    ),
    FeatureSpec(
        "days_since_peak_252",
        252,
        "log1p",
        "observations since the latest max of the last 252 prices (0 at a new high)",
        "drawdown",
        partial(fx.days_since_peak, 252),
    ),
    FeatureSpec(
        "amihud_63",
        64,
        "slog1p",
        "1e6 * mean over the last 63 days with close*volume > 0 of abs(r) / (close*volume)",
        "liquidity",
        partial(fx.amihud, 63),
    ),
    FeatureSpec(
        "log_dollar_vol_63",
        63,
        "identity",
        "ln(mean(close*volume) over 63 days)",
        "liquidity",
        partial(fx.log_dollar_volume, 63),
    ),
    FeatureSpec(
        "volume_z_21_252",
        252,
        "identity",
        "(mean ln(1+volume) over 21 - mean over 252) / std over 252",
        "volume_surge",
        partial(fx.volume_z, 21, 252),
    ),
    FeatureSpec(
        "zero_volume_frac_63",
        63,
        "identity",
        "share of the last 63 days with volume = 0",
        "liquidity",
        partial(fx.zero_volume_share, 63),
    ),
    *[
        FeatureSpec(
            f"{base}_lag{lag}",
            lag + 1,
            transform,
            f"{base} as of {lag} observations earlier",
            group,
            partial(fx.lagged, base, lag),
            reads=(base,),
            lag=lag,
        )
        for base, transform, group in (
            ("vol_21", "log", "vol_level"),
            ("dd_252", "identity", "drawdown"),
        )
        for lag in (21, 42)
    ],
    FeatureSpec(
        "parkinson_vol_21",
        21,
        "log",
        "sqrt(mean(ln(high/low)^2) over 21 / (4 ln 2)) * sqrt(252); needs high and low",
        "vol_level",
        partial(fx.parkinson_vol, 21),
    ),
    FeatureSpec(
        "spread_bps",
        1,
        "slog1p",
        "credit spread level in bps; needs spread_bps",
        "spread",
        lambda: pl.col("spread_bps"),
    ),
    FeatureSpec(
        "spread_chg_21",
        22,
        "slog1p",
        "spread_bps_t - spread_bps_(t-21)",
        "spread",
        lambda: pl.col("spread_bps") - fx.earlier(pl.col("spread_bps"), 21),
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURE_SPECS)
SPEC_OF: dict[str, FeatureSpec] = {s.name: s for s in FEATURE_SPECS}

# The feature table: one row per state, every feature of the registry as Float64.
FEATURES_TABLE_SCHEMA = pl.Schema(
    {
        "as_of_date": pl.Date(),
        ENTITY: pl.String(),
        DATE: pl.Date(),
        "window_start": pl.Date(),
        "n_obs": pl.Int32(),
        **{name: pl.Float64() for name in FEATURE_NAMES},
        "features_null": pl.Int32(),
    }
)


def feature_set_hash() -> str:
    """sha256 of the canonical JSON of every definition: changes whenever one does.

    Group and votes are encoder settings, not definitions: each model's manifest records
    them per feature, so the model's own hash covers them.
    """
    payload = json.dumps(
        {"feature_set": FEATURE_SET, "specs": [s.definition() for s in FEATURE_SPECS]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()
