"""The scenario rows of the joint space for an as-of date: features, vectors, metadata."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.features.registry import FEATURE_NAMES
from stabfrag.model.bundle import Models
from stabfrag.scenarios.library import Scenario, library_frame
from stabfrag.scenarios.paths import reference_features, synthetic_features


@dataclass(frozen=True)
class ScenarioSpace:
    """The scenario rows of one as-of date: their features, vectors and metadata."""

    features: pl.DataFrame
    vectors: np.ndarray
    high: np.ndarray
    table: pl.DataFrame


class ScenarioLibrary:
    """Scenario vectors per as-of date: a historical episode uses its real reference path
    only once it has ended by that date (no look-ahead).

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
    ) -> None:
        self.models = models
        self.library = library
        self.synthetic = synthetic_features(library, models.scen.baseline())
        self.real = reference_features(
            library, reference_prices, max_staleness_days=max_staleness_days
        )
        self.ends = {s.id: s.episode_end for s in library if s.episode_end is not None}
        self.cache: dict[tuple[str, ...], ScenarioSpace] = {}

    def key(self, as_of: dt.date) -> tuple[str, ...]:
        """The historical scenarios whose real path is known on `as_of`."""
        if self.real.height == 0:
            return ()
        return tuple(sid for sid in self.real["scenario_id"].to_list() if self.ends[sid] <= as_of)

    def space(self, key: tuple[str, ...]) -> ScenarioSpace:
        if key not in self.cache:
            feats = self.synthetic
            if key:
                real = self.real.filter(pl.col("scenario_id").is_in(list(key)))
                feats = pl.concat(
                    [feats.filter(~pl.col("scenario_id").is_in(list(key))), real],
                    how="diagonal_relaxed",
                )
                order = {s.id: i for i, s in enumerate(self.library)}
                feats = feats.sort(pl.col("scenario_id").replace_strict(order))
            vectors, _ = self.models.scen.encode(feats.select(FEATURE_NAMES))
            table = library_frame(self.library).join(
                feats.select("scenario_id", "path_source"), on="scenario_id", how="left"
            )
            high = (table["severity"] == "HIGH").to_numpy()
            self.cache[key] = ScenarioSpace(feats, vectors, high, table)
        return self.cache[key]
