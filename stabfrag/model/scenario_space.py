"""The scenario rows of the joint space for an as-of date: features, vectors, metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.config import BAD_TICK_MULTIPLE, FACTOR_ROLES
from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.ingest.prices import read_prices, validate
from stabfrag.model.bundle import Models
from stabfrag.model.factors import (
    ROLES,
    SIGNATURE_FEATURES,
    UNIVERSE,
    FactorBlock,
    declared_moves,
)
from stabfrag.model.linalg import normalise
from stabfrag.scenarios.library import Scenario, library_frame
from stabfrag.scenarios.paths import (
    factor_reference_features,
    reference_features,
    synthetic_features,
)
from stabfrag.schema import ENTITY, PRICE_SCHEMA


def reference_prices(
    prices: Path | None,
    library: tuple[Scenario, ...],
    *,
    bad_tick: float = BAD_TICK_MULTIPLE,
    also: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The valid prices of the library's reference entities and of `also` (a build's
    declared factors; empty when there are none), and their bad ticks known only on a
    later date."""
    refs = sorted({s.reference_entity for s in library if s.reference_entity} | set(also))
    if not refs or prices is None:
        return pl.DataFrame(schema=PRICE_SCHEMA), None
    raw = read_prices(prices, where=pl.col(ENTITY).is_in(refs))
    checked = validate(raw, min_prices=0, bad_tick=bad_tick)
    return checked.prices, checked.ticks


# (scenarios that exist, those on a real path, historical ones whose last day is past)
Key = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
# Given historical episodes: {scenario id: the z-scores of its market's context on its
# last day} (engine.episodes; an episode the book has no context for is left out).
EpisodeContexts = Callable[[list[Scenario]], dict[str, np.ndarray]]
# A joint manifest's key: "market" gives each historical episode its market's context on
# its last day; absent, an episode is its own context (the models fitted before).
EPISODE_CONTEXT = "episode_context"
MARKET_CONTEXT = "market"
OWN_CONTEXT = "own"


@dataclass(frozen=True)
class ScenarioSpace:
    """The scenario rows of one as-of date: their features, vectors and metadata."""

    features: pl.DataFrame
    vectors: np.ndarray
    high: np.ndarray
    table: pl.DataFrame
    branch: np.ndarray  # the vectors without a factor model's blocks (the scenario branch's)


def episode_means(rows: pl.DataFrame, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the scenario ids of `rows`, sorted; the mean of `values` over each one's rows):
    an observed episode is the mean of its days."""
    ids, inverse = np.unique(rows["scenario_id"].to_numpy(), return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, inverse.ravel(), values)
    return ids, sums / np.bincount(inverse.ravel(), minlength=len(ids))[:, None]


def _path_known(
    library: tuple[Scenario, ...], ticks: pl.DataFrame | None, also: tuple[str, ...] = ()
) -> dict[str, dt.date]:
    """The date from which each episode's real path is known: its end, or later when a bad
    tick on or before the end, of its reference or of `also` (a factor model's declared
    factors, whose observed states it takes), is known only on a later close
    (Validated.ticks)."""
    ends = {s.id: s.episode_end for s in library if s.episode_end is not None}
    if ticks is None or ticks.height == 0:
        return ends
    for s in library:  # a few dozen scenarios, not data rows
        if s.id not in ends or s.reference_entity is None:
            continue
        end = ends[s.id]
        late = ticks.filter(
            pl.col("entity_id").is_in([s.reference_entity, *also])
            & (pl.col("date") <= end)
            & (pl.col("known_on") > end)
        )["known_on"]
        ends[s.id] = max([end, *late.to_list()])
    return ends


class ScenarioLibrary:
    """Scenario vectors per as-of date, point in time: a historical scenario exists only
    from the date its episode is known (its end, or `known_from`), and uses its real
    reference path only once the episode has ended (no look-ahead).

    `reference_prices` are the validated, sorted prices of the library's reference
    entities (empty when the user's prices hold none); the caller reads them.
    """

    def __init__(
        self,
        models: Models,
        library: tuple[Scenario, ...],
        reference_prices: pl.DataFrame,
        *,
        max_staleness_days: int,
        reference_ticks: pl.DataFrame | None = None,
        factors: dict[str, str] | None = None,
        contexts: EpisodeContexts | None = None,
    ) -> None:
        self.models = models
        self.library = library
        self.synthetic = synthetic_features(library, models.scen.baseline())
        self.real = reference_features(
            library, reference_prices, max_staleness_days=max_staleness_days
        )
        # A factor model's declared factors (a model without a block uses none).
        factors = (factors or {}) if models.joint.factors is not None else {}
        self.ends = _path_known(library, reference_ticks, also=tuple(factors.values()))
        self.cache: dict[Key, ScenarioSpace] = {}
        # A model that asks for it gives each historical episode its market's context on
        # its last day (engine.episodes), computed when the episode first appears.
        wants = models.joint.manifest.get(EPISODE_CONTEXT) == MARKET_CONTEXT
        self.contexts = contexts if wants and models.scen.context else None
        self.episode_context: dict[str, np.ndarray | None] = {}
        self.signatures = (
            ScenarioSignatures(
                models.joint.factors,
                library,
                reference_prices,
                factors,
                max_staleness_days=max_staleness_days,
            )
            if models.joint.factors is not None and factors
            else None
        )

    def key(self, as_of: dt.date) -> Key:
        """(the scenarios that exist on `as_of`, those of them on their real path, the
        historical ones among them whose last day is past: those take their market's
        context, for a model that asks)."""
        known = tuple(s.id for s in self.library if s.known_on(as_of))
        real = (
            ()
            if self.real.height == 0
            else tuple(
                sid
                for sid in self.real["scenario_id"].to_list()
                if sid in known and self.ends[sid] <= as_of
            )
        )
        ended = tuple(
            s.id
            for s in self.library
            if s.id in known
            and s.kind == "historical"
            and s.episode_end is not None
            and s.episode_end <= as_of
        )
        return known, real, ended

    def space(self, key: Key) -> ScenarioSpace:
        if key not in self.cache:
            self.cache[key] = self._space(*key)
        return self.cache[key]

    def _space(
        self, known: tuple[str, ...], real_ids: tuple[str, ...], ended: tuple[str, ...]
    ) -> ScenarioSpace:
        scen = self.models.scen
        synthetic = self.synthetic.filter(
            pl.col("scenario_id").is_in(list(known)) & ~pl.col("scenario_id").is_in(list(real_ids))
        )
        parts = [(synthetic, scen.standardised(synthetic.select(FEATURE_NAMES)))]
        if real_ids:
            real = self.real.filter(pl.col("scenario_id").is_in(list(real_ids)))
            # A real episode is the mean of its reference's states over the episode.
            ids, mean = episode_means(real, scen.standardised(real.select(FEATURE_NAMES)))
            last = real.filter(pl.col("_end")).sort(
                pl.col("scenario_id").replace_strict({s: i for i, s in enumerate(ids)})
            )
            parts.append((last, mean))
        feats = pl.concat([f for f, _ in parts], how="diagonal_relaxed")
        z = np.vstack([z for _, z in parts])
        order = {s.id: i for i, s in enumerate(self.library)}
        rank = feats["scenario_id"].replace_strict(order, return_dtype=pl.Int64).to_numpy()
        by_library = np.argsort(rank, kind="stable")
        feats, z = feats[by_library], z[by_library]
        context, placed = (
            self._contexts(feats["scenario_id"], z, ended) if scen.context else (None, frozenset())
        )
        branch, _ = scen.encode_z(z, context)
        # A historical episode in its market's context says on which day (its last) it
        # was read: its vector differs from its reference's path.
        read_on = {s.id: s.episode_end for s in self.library if s.id in placed}
        table = library_frame(self.library).join(
            feats.select("scenario_id", "path_source"),
            on="scenario_id",
            how="inner",
            maintain_order="left",
        )
        table = table.with_columns(
            pl.col("scenario_id")
            .replace_strict(read_on, default=None, return_dtype=pl.Date)
            .alias("context_as_of")
        )
        high = (table["severity"] == "HIGH").to_numpy()
        vectors = branch
        if self.signatures is not None:
            blocks = self.signatures.blocks(table["scenario_id"], set(real_ids))
            vectors = normalise(branch.astype(np.float64) + blocks, inplace=True)[0]
            vectors = vectors.astype(np.float32)
        return ScenarioSpace(feats, vectors, high, table, branch)

    def prepare(self, last: dt.date) -> tuple[str, ...]:
        """Compute at once the contexts of every historical episode whose last day is past
        on `last` (a run's last date): one read of prices for many episodes, not one each.
        Returns those episodes' ids."""
        ended = self.key(last)[2]
        self._computed(ended)
        return ended

    def held(self, last: dt.date) -> dict[str, np.ndarray | None]:
        """The contexts of every historical episode ended by `last` (computed now if not
        yet; None: its last day has none in this book), for another process's library of
        the same run (`hold`): a run reads them once, not once per worker."""
        ended = self.prepare(last)
        return {sid: self.episode_context[sid] for sid in ended if sid in self.episode_context}

    def hold(self, contexts: dict[str, np.ndarray | None]) -> None:
        """Take the contexts another library of the same run computed (`held`)."""
        self.episode_context.update(contexts)

    def _computed(self, ended: tuple[str, ...]) -> None:
        """The contexts of the episodes `ended` not yet computed (a model that asks)."""
        new = [s for s in self.library if s.id in ended and s.id not in self.episode_context]
        if new and self.contexts is not None:
            found = self.contexts(new)
            self.episode_context.update({s.id: found.get(s.id) for s in new})

    def _contexts(
        self, ids: pl.Series, z: np.ndarray, ended: tuple[str, ...]
    ) -> tuple[np.ndarray, frozenset[str]]:
        """Each scenario's market context: its own state (a scenario is a market-wide
        move), or, for a historical episode whose last day is past (`ended`), its market's
        on that day; and which episodes took it."""
        context = z.copy()
        if self.contexts is None:
            return context, frozenset()
        self._computed(ended)
        placed = set()
        for i, sid in enumerate(ids.to_list()):  # the date's scenarios, a few dozen
            row = self.episode_context.get(sid) if sid in ended else None
            if row is not None:
                context[i] = row
                placed.add(sid)
        return context, frozenset(placed)


class ScenarioSignatures:
    """A factor model's scenario blocks: the moves each scenario declares; for a
    historical episode the build's prices cover, once it has ended, the moves its declared
    factors' observed states over the episode imply, for those factors."""

    def __init__(
        self,
        block: FactorBlock,
        library: tuple[Scenario, ...],
        prices: pl.DataFrame,
        factors: dict[str, str],
        *,
        max_staleness_days: int,
    ) -> None:
        self.block = block
        self.roles = (*factors, UNIVERSE)
        self.ids = [s.id for s in library]
        self.types = {s.id: s.shock_type for s in library}
        self.declared = declared_signatures(block, library)
        self.observed = factor_reference_features(
            library, prices, factors, max_staleness_days=max_staleness_days
        )

    def blocks(self, ids: pl.Series, real_ids: set[str]) -> np.ndarray:
        """The factor blocks of the scenarios `ids` (in that order), (n, 384) float64;
        `real_ids` are on their observed paths."""
        at = {sid: i for i, sid in enumerate(self.ids)}
        order = ids.to_list()
        signature = self.declared[[at[sid] for sid in order]]  # a copy: filled below
        if self.observed.height and real_ids:
            seen = self.observed.filter(pl.col("scenario_id").is_in(list(real_ids)))
            self._observed(seen, order, signature)
        departure = by_type(
            self.block.departures(signature, self.roles),
            np.array([self.types[sid] for sid in order]),
        )
        return self.block.blocks(departure, scenarios=True)

    def _observed(self, seen: pl.DataFrame, order: list[str], signature: np.ndarray) -> None:
        """Each scenario's observed factors' mean states over the episode, in place of
        their declared parts of `signature`."""
        width = len(SIGNATURE_FEATURES)
        for role in FACTOR_ROLES:  # five blocks of columns
            rows = seen.filter(pl.col("role") == role)
            if rows.height == 0:
                continue
            # The mean over the episode's days, as a real scenario's own state is.
            names, means = episode_means(rows, self.block.scaled(rows, role))
            where = {sid: i for i, sid in enumerate(names)}
            pick = np.array([where.get(sid, -1) for sid in order])
            col = ROLES.index(role) * width
            signature[pick >= 0, col : col + width] = means[pick[pick >= 0]]


def declared_signatures(block: FactorBlock, library: tuple[Scenario, ...]) -> np.ndarray:
    """Each scenario's signature as its declared moves give it, through the block's map."""
    moves = [
        declared_moves(dict(s.factor_shocks), s.vol_multiplier, s.volume_multiplier)
        for s in library
    ]
    return block.predicted(np.stack(moves))


def by_type(departure: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Each scenario's departure replaced by its shock type's mean direction: every
    scenario of a type meets a state's block alike, so the block names the type, and the
    rest of the vector the severity and the episode (a block of an episode's own would
    outweigh them: a calm date near a crash's direction would be named that crash)."""
    out = np.empty_like(departure)
    length = np.sqrt((departure**2).sum(axis=1, keepdims=True))
    unit = np.divide(departure, length, out=np.zeros_like(departure), where=length > 0)
    for kind in np.unique(types):  # the library's shock types, not rows
        out[types == kind] = unit[types == kind].mean(axis=0)
    return out
