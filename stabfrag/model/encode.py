"""States to joint vectors: standardise, give each state its market context, encode, and
join with the scenario space of its as-of date. The pipeline and evaluate both use this,
so a model's figures are computed on the vectors a build writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.model.bundle import Models
from stabfrag.model.factors import UNIVERSE, date_signatures, state_index
from stabfrag.model.joint import JointResult, joint_states
from stabfrag.model.scenario_space import ScenarioLibrary, ScenarioSpace
from stabfrag.schema import ENTITY


def _z_frame(states: pl.DataFrame, z: np.ndarray, cols: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"as_of_date": states["as_of_date"], ENTITY: states[ENTITY]}).with_columns(
        pl.Series(c, z[:, i]) for i, c in enumerate(cols)
    )


def date_medians(states: pl.DataFrame, z: np.ndarray) -> pl.DataFrame:
    """Each as-of date's median z over its states (as_of_date, _z0.._z{d-1}): the context
    of a build without a declared market."""
    cols = [f"_z{i}" for i in range(z.shape[1])]
    return _z_frame(states, z, cols).group_by("as_of_date").agg(pl.col(cols).median())


def market_context(
    states: pl.DataFrame,
    z: np.ndarray,
    *,
    market: str | None,
    reference: tuple[pl.DataFrame, np.ndarray] | None = None,
    contexts: pl.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each state's market: the z-scores of its as-of date's reference, and which states
    had none.

    The reference is the median over the date's states (the build's universe), or the
    named market entity's own state that date: among `states`, or in `reference` (its
    states and z, read apart: an entity block that does not hold the market). `contexts`
    gives each date's context computed beforehand (an entity block of a build without a
    market: date_medians over every entity). Point in time: the same date's states only.
    A date without the market entity's state gets the calibration centre (zeros).
    """
    cols = [f"_z{i}" for i in range(z.shape[1])]
    frame = _z_frame(states, z, cols)
    if contexts is not None:  # each date's context, computed once over every entity
        reference_z = contexts
    elif market is None:
        reference_z = date_medians(states, z)
    else:
        own = frame if reference is None else _z_frame(*reference, cols)
        reference_z = (
            own.filter(pl.col(ENTITY) == market).unique("as_of_date").select("as_of_date", *cols)
        )
    joined = frame.select("as_of_date").join(
        reference_z, on="as_of_date", how="left", maintain_order="left"
    )
    missing = joined[cols[0]].is_null().to_numpy() if cols else np.zeros(states.height, dtype=bool)
    return joined.select(cols).fill_null(0.0).to_numpy().astype(np.float64), missing


@dataclass(frozen=True)
class Encoded:
    """Joint vectors of states, one result per version of the scenario library."""

    z_stab: np.ndarray  # float32 (n, 384)
    ok: np.ndarray  # rows with any signal
    no_context: np.ndarray  # states whose date had no market reference


def encode_states(
    models: Models,
    states: pl.DataFrame,
    *,
    market: str | None,
    reference: pl.DataFrame | None = None,
    contexts: pl.DataFrame | None = None,
) -> Encoded:
    """z_stab for every state (as_of_date, entity_id and the feature columns); `reference`:
    the market entity's states when `states` may not hold them."""
    z = models.stab.standardised(states.select(FEATURE_NAMES))
    ref = (
        None
        if reference is None
        else (reference, models.stab.standardised(reference.select(FEATURE_NAMES)))
    )
    context, missing = (
        market_context(states, z, market=market, reference=ref, contexts=contexts)
        if models.stab.context
        else (None, np.zeros(states.height, dtype=bool))
    )
    z_stab, ok = models.stab.encode_z(z, context)
    return Encoded(z_stab=z_stab, ok=ok, no_context=missing)


@dataclass(frozen=True)
class Joined:
    """The states of one library version: which rows, their space and joint result."""

    rows: np.ndarray  # boolean mask over the states
    dates: list[dt.date]
    space: ScenarioSpace
    result: JointResult


def join_scenarios(
    models: Models,
    scenarios: ScenarioLibrary,
    as_of: pl.Series,
    z_stab: np.ndarray,
    *,
    weights: dict[str, float],
    z_prof: np.ndarray | None = None,
    has_prof: np.ndarray | None = None,
    consume: bool = False,
    date_blocks: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Joined]:
    """Joint vectors, nearest scenario and fragility of every state, one computation per
    version of the scenario library (the point-in-time library changes with the date).
    `consume`: z_stab is not needed after, and may hold the joint vectors. `date_blocks`:
    a factor model's blocks per date and each state's row among them (factor_blocks)."""
    dates = sorted(set(as_of.to_list()))
    if dates:  # every episode's context at once
        scenarios.prepare(dates[-1])
    keys = {d: scenarios.key(d) for d in dates}
    # In date order (a version's first date), so the parts' rows laid end to end stay
    # sorted by date: the key's own order would make the caller sort the vectors.
    versions = list(dict.fromkeys(keys[d] for d in dates))
    version_of = {d: versions.index(k) for d, k in keys.items()}
    state_keys = as_of.replace_strict(version_of, return_dtype=pl.Int64).to_numpy()
    out = []
    for i, key in enumerate(versions):
        space = scenarios.space(key)
        sel = state_keys == i
        at = np.flatnonzero(sel)
        # States come sorted by date and a version covers a run of dates: its rows are
        # then one slice, a view of the arrays, not a copy.
        run = slice(at[0], at[-1] + 1) if len(at) and at[-1] - at[0] + 1 == len(at) else sel

        def rows(a: np.ndarray | None, run: slice | np.ndarray = run) -> Any:
            return None if a is None else a[run]

        result = joint_states(
            rows(z_stab),
            space.vectors.astype(np.float64),
            space.high,
            weights=weights,
            tau=models.joint.tau,
            z_prof=rows(z_prof),
            has_prof=rows(has_prof),
            consume=consume,
            # (The same array as the vectors but for a factor model: not copied twice.)
            branch_scen=None if space.branch is space.vectors else space.branch.astype(np.float64),
            date_blocks=None if date_blocks is None else (date_blocks[0], rows(date_blocks[1])),
        )
        out.append(Joined(sel, [d for d, k in keys.items() if k == key], space, result))
    return out


def factor_blocks(
    models: Models,
    states: pl.DataFrame,
    *,
    factors: dict[str, str] | None,
    market: str | None,
    apart: pl.DataFrame | None = None,
    universe: pl.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A factor model's block of each state's date: (blocks (d, 384), each state's row
    among them); None for a model without one, or a build that declares no factors (the
    universe alone did not tell the types apart on real markets: the block is left off).
    `apart`: the factor and market entities' states read apart from `states` (an entity
    block may not hold them); `universe`: each date's feature medians over every entity,
    computed beforehand."""
    block = models.joint.factors
    declared = factors or {}
    if block is None or not declared:  # no factor series: v3's vectors
        return None
    source = states if apart is None else pl.concat([states, apart], how="diagonal_relaxed")
    dates, signature = date_signatures(
        block, source, factors=declared, market=market, universe=universe
    )
    blocks = block.blocks(block.departures(signature, (*declared, UNIVERSE)))
    return blocks, state_index(dates, states["as_of_date"])
