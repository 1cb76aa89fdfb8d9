"""The factor block of a joint model (v4): where a date's market stands among the shock
types, beside each state's vector, and where each scenario's type stands, beside its own.

A build declares which of its entities play the market's factors (`--factors
equity=SPY,rates=TLT,...`). A date's signature is a few features of each declared factor's
state that date and of its universe (the `--market` entity, or the median of the date's
states), each measured against the series' own year of volatility and scaled by fixed
constants calibrated on generated markets: it needs no history and is point in time. A
scenario's signature is what its declared `factor_shocks` look like through a map fitted
on generated episodes, or, for a historical episode the build's prices cover, its
declared factors' observed states. Both meet as departures from a calm market's
signature, in the directions declared moves can take it; every scenario of a shock type
carries its type's mean direction. The block, in directions the rest of the vector never
uses, tells the shock types apart: from one price series an FX crisis, a rates shock and
an equity crash look alike, from the factors they do not (bench/README.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from stabfrag.config import FACTOR_ROLES
from stabfrag.errors import ModelError
from stabfrag.schema import DIM, ENTITY

UNIVERSE = "universe"
ROLES = (*FACTOR_ROLES, UNIVERSE)  # the signature's blocks, in this order
# What a series' state says about its move, each measured against the series' own
# trailing-year volatility: the same move reads the same in a bond fund and in an equity
# index, and a generated market's calm levels carry over to real ones.
SIGNATURE_FEATURES = (
    "vol_21_rel",  # log(vol_21 / vol_252)
    "vol_63_rel",  # log(vol_63 / vol_252)
    "vol_jump",  # log(vol_21 / vol_21 a month before)
    "move_21",  # ret_21 in units of the year's volatility over 21 days
    "move_63",
    "drawdown",  # dd_252 in units of the year's volatility
    "max_dd_63_rel",
    "worst_day",  # worst_ret_63 in daily sigmas of the year
    "volume_z_21_252",
    "spread_chg_21",
)
SIGNATURE_INPUTS = (
    "vol_21",
    "vol_63",
    "vol_252",
    "vol_21_lag21",
    "ret_21",
    "ret_63",
    "dd_252",
    "max_dd_63",
    "worst_ret_63",
    "volume_z_21_252",
    "spread_chg_21",
)
VOL_FLOOR = 1e-4  # annualised: a series that never moved has no scale


def derived(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the signature's features, from the state features it holds."""
    year = pl.col("vol_252").clip(lower_bound=VOL_FLOOR)

    def per(days: int) -> pl.Expr:  # the year's volatility over `days` trading days
        return year * float(np.sqrt(days / 252.0))

    def ratio(a: str, b: pl.Expr) -> pl.Expr:
        return (pl.col(a).clip(lower_bound=VOL_FLOOR) / b).log()

    return frame.with_columns(
        ratio("vol_21", year).alias("vol_21_rel"),
        ratio("vol_63", year).alias("vol_63_rel"),
        ratio("vol_21", pl.col("vol_21_lag21").clip(lower_bound=VOL_FLOOR)).alias("vol_jump"),
        (pl.col("ret_21") / per(21)).alias("move_21"),
        (pl.col("ret_63") / per(63)).alias("move_63"),
        (pl.col("dd_252") / year).alias("drawdown"),
        (pl.col("max_dd_63") / per(63)).alias("max_dd_63_rel"),
        (pl.col("worst_ret_63") / per(1)).alias("worst_day"),
    )


# A scaled feature's bound (interquartile ranges from the centre), for a factor block
# whose manifest records none (the first v4's). The fit chooses its own (fitting.v4): at 2
# a crisis's move and a calm series' wander of 1.5 read alike, and a credit crisis
# whose dollar happened to drift up was named an FX crisis.
SATURATION = 2.0
# Constants per group of roles: every factor series shares one set, the universe (a
# median of many states, calmer than any one series) has its own.
GROUPS = {role: "factor" for role in FACTOR_ROLES} | {UNIVERSE: "universe"}


# A market's moves as a scenario declares them: log(1 + move) of each factor, log of the
# volatility and volume multipliers.
MOVE_INPUTS = (*FACTOR_ROLES, "vol", "volume")


def declared_moves(
    shocks: dict[str, float], vol_multiplier: float = 1.0, volume_multiplier: float = 1.0
) -> np.ndarray:
    """A scenario's declared moves (MOVE_INPUTS)."""
    moves = [float(np.log1p(shocks.get(role, 0.0))) for role in FACTOR_ROLES]
    multipliers = [float(np.log(max(m, 1e-3))) for m in (vol_multiplier, volume_multiplier)]
    return np.array([*moves, *multipliers])


@dataclass(frozen=True)
class FactorBlock:
    """A joint model's factor block: the signature's scaling, the fitted map from declared
    moves to a signature, and the block's weight and basis.

    A date's signature and a scenario's meet as departures from a calm market's signature,
    in the few directions declared moves can take it (the map's row space: a signature's
    part outside them is noise no scenario can match). A scenario's signature is what its
    declared moves look like through the map (fitted on generated episodes, whose moves
    are known) or, once its episode has ended in the build's prices, its factors'
    observed states.
    """

    weight: float
    center: dict[str, np.ndarray]  # group -> per feature
    spread: dict[str, np.ndarray]  # group -> interquartile range per feature
    calm_signature: np.ndarray  # the map's constant: a calm market's signature
    scenario_map: np.ndarray  # (len(MOVE_INPUTS), signature width): declared moves -> departure
    directions: np.ndarray  # (signature width, len(MOVE_INPUTS)): the map's row space, orthonormal
    calm: float  # how far a calm date departs in those directions (a fitted quantile)
    basis: np.ndarray  # (len(MOVE_INPUTS), 384), rows orthonormal
    saturation: float = SATURATION  # a scaled feature's bound

    @classmethod
    def from_manifest(cls, spec: dict[str, Any], basis: np.ndarray) -> FactorBlock:
        if tuple(spec["features"]) != SIGNATURE_FEATURES or tuple(spec["roles"]) != ROLES:
            raise ModelError("factor block: its features or roles are not this version's")
        if tuple(spec["moves"]) != MOVE_INPUTS or basis.shape != (len(MOVE_INPUTS), DIM):
            raise ModelError(f"factor block: basis shape {basis.shape} or moves are wrong")
        width = len(ROLES) * len(SIGNATURE_FEATURES)
        scenario_map = np.array(spec["scenario_map"], dtype=np.float64)
        if scenario_map.shape != (len(MOVE_INPUTS) + 1, width):
            raise ModelError(f"factor block: scenario map shape {scenario_map.shape} is wrong")
        constants = spec["constants"]
        saturation = float(spec.get("saturation", SATURATION))
        if not (np.isfinite(saturation) and saturation > 0):
            raise ModelError(f"factor block: saturation {saturation} is not a positive bound")
        return cls(
            weight=float(spec["weight"]),
            center={g: np.array(c["center"], dtype=np.float64) for g, c in constants.items()},
            spread={g: np.array(c["spread"], dtype=np.float64) for g, c in constants.items()},
            calm_signature=scenario_map[-1],
            scenario_map=scenario_map[:-1],
            directions=row_space(scenario_map[:-1]),
            calm=float(spec["calm_length"]),
            basis=basis,
            saturation=saturation,
        )

    def scaled(self, frame: pl.DataFrame, role: str, *, market: bool = False) -> np.ndarray:
        """The role's signature features of each row, centred, scaled and squashed into
        (-saturation, saturation) (null -> 0): the signature says which way each series
        moved, and no one feature's tail (a single path's volume surge) outweighs the rest.

        `market`: the universe's rows are a declared market entity's. The universe's
        constants are a median's of many states, and one series' volume wanders further
        (on generated panels the market's interquartile range is 1.4 times the median's,
        an index fund's several times): its volume keeps the first bound, or a calm
        summer's thin trading would read as a liquidity dry-up."""
        group = GROUPS[role]
        if not set(SIGNATURE_FEATURES) <= set(frame.columns):
            frame = derived(frame)
        x = frame.select(pl.col(c).cast(pl.Float64) for c in SIGNATURE_FEATURES).to_numpy()
        z = np.nan_to_num((x - self.center[group]) / self.spread[group], nan=0.0)
        if group == "factor":  # a fund's or index's own volume says little of the market
            z[:, SIGNATURE_FEATURES.index("volume_z_21_252")] = 0.0
        bound = np.full(len(SIGNATURE_FEATURES), self.saturation)
        if market and role == UNIVERSE:  # one series' volume wanders beyond a median's
            bound[SIGNATURE_FEATURES.index("volume_z_21_252")] = min(SATURATION, self.saturation)
        return bound * np.tanh(np.clip(z, -1e6, 1e6) / bound)

    def predicted(self, moves: np.ndarray) -> np.ndarray:
        """The signature of declared moves (rows of declared_moves)."""
        return self.calm_signature + moves @ self.scenario_map

    def departures(self, signature: np.ndarray, roles: tuple[str, ...]) -> np.ndarray:
        """How far each signature departs from calm, in the map's directions, over the
        signature's parts of `roles` (the others are left out)."""
        keep = np.repeat(np.isin(ROLES, roles), len(SIGNATURE_FEATURES))
        return np.where(keep, signature - self.calm_signature, 0.0) @ self.directions

    def blocks(self, departure: np.ndarray, *, scenarios: bool = False) -> np.ndarray:
        """The blocks of departures, through the basis: (n, 384) float64.

        A state's is w * d / sqrt(|d|^2 + calm^2): about w long when its date departs
        well beyond calm, whatever the size (every severe crash does not fall into the
        most severe one), short when calm (its noise picks no scenario). A scenario's is
        w * unit(d): its direction names its type, and its severity is left to the rest
        of the vector."""
        calm = 0.0 if scenarios else self.calm
        norm = np.sqrt((departure**2).sum(axis=1, keepdims=True) + calm**2)
        unit = np.divide(departure, norm, out=np.zeros_like(departure), where=norm > 0)
        return self.weight * (unit @ self.basis)


def row_space(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis (columns) of the row space of `matrix` (QR, signs fixed)."""
    q, r = np.linalg.qr(matrix.T)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def date_signatures(
    block: FactorBlock,
    states: pl.DataFrame,
    *,
    factors: dict[str, str],
    market: str | None,
    universe: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Each as-of date's signature: (the dates, (d, roles * features)).

    `states` holds as_of_date, entity_id and the features. A factor's part is its entity's
    state that date (a calm market's, when it has none: HYG before 2007 says nothing);
    the universe's is the market entity's state, or the date's median over `states`;
    `universe` gives each date's median computed beforehand (an entity block that holds
    only some entities). An undeclared factor's part is calm too.
    """
    dates = states.select("as_of_date").unique().sort("as_of_date")
    by_role = {role: entity for role, entity in factors.items()}
    if market is not None:
        by_role[UNIVERSE] = market
    width = len(SIGNATURE_FEATURES)
    signature = np.tile(block.calm_signature, (dates.height, 1))
    for i, role in enumerate(ROLES):  # six blocks of columns, not rows
        if role in by_role:  # (the features of the rows read, not of every state)
            rows = states.filter(pl.col(ENTITY) == by_role[role]).unique("as_of_date")
            rows = derived(rows).select("as_of_date", *SIGNATURE_FEATURES)
        elif role == UNIVERSE:
            rows = universe if universe is not None else date_feature_medians(states)
        else:
            continue
        joined = dates.join(
            rows.with_columns(pl.lit(True).alias("_held")),
            on="as_of_date",
            how="left",
            maintain_order="left",
        )
        held = joined["_held"].is_not_null().to_numpy()
        signature[held, i * width : (i + 1) * width] = block.scaled(
            joined.filter(pl.Series(held)), role, market=market is not None
        )
    return dates, signature


def date_feature_medians(states: pl.DataFrame) -> pl.DataFrame:
    """Each date's median of the signature features over its states (each state's own
    features first: a move in units of its own volatility)."""
    each = derived(states.select("as_of_date", *SIGNATURE_INPUTS))
    return each.group_by("as_of_date").agg(pl.col(c).median() for c in SIGNATURE_FEATURES)


def state_index(dates: pl.DataFrame, as_of: pl.Series) -> np.ndarray:
    """Each state's row among `dates`."""
    order = {d: i for i, d in enumerate(dates["as_of_date"].to_list())}
    return as_of.replace_strict(order, return_dtype=pl.Int64).to_numpy()


def complement_basis(span: np.ndarray, rows: int, seed: str) -> np.ndarray:
    """`rows` orthonormal directions of R^384 orthogonal to the rows of `span`: where a
    block adds to a vector without touching what the rest of it says."""
    q_span, _ = np.linalg.qr(span.T)  # (384, k)
    gen = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    g = gen.standard_normal((DIM, rows))
    g -= q_span @ (q_span.T @ g)
    q, r = np.linalg.qr(g)
    return np.ascontiguousarray((q * np.sign(np.diag(r))[None, :]).T)
