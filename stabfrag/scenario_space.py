"""The scenario rows of the joint space for an as-of date: features, vectors, metadata."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from stabfrag.config import BuildConfig
from stabfrag.encoders import Models
from stabfrag.features import FEATURE_NAMES
from stabfrag.inputs import read_prices, validate
from stabfrag.scenarios import Scenario, library_frame, reference_features, synthetic_features
from stabfrag.schema import ENTITY, JOINT_MODEL_ID, JOINT_TYPE, VECTOR_TYPE


@dataclass(frozen=True)
class ScenarioSpace:
    """The scenario rows of one as-of date: their features, vectors and metadata."""

    features: pl.DataFrame
    vectors: np.ndarray
    high: np.ndarray
    table: pl.DataFrame


class ScenarioLibrary:
    """Scenario vectors per as-of date: a historical episode uses its real reference path
    only once it has ended by that date (no look-ahead)."""

    def __init__(self, config: BuildConfig, models: Models, library: tuple[Scenario, ...]) -> None:
        self.models = models
        self.library = library
        self.synthetic = synthetic_features(library, models.scen.baseline())
        refs = sorted({s.reference_entity for s in library if s.reference_entity})
        real = pl.DataFrame()
        if refs:
            raw = read_prices(config.prices, where=pl.col(ENTITY).is_in(refs))
            if raw.height:
                real = reference_features(
                    library,
                    validate(raw, min_prices=0).prices,
                    max_staleness_days=config.max_staleness_days,
                )
        self.real = real
        self.ends = {s.id: s.episode_end for s in library if s.episode_end is not None}
        self.cache: dict[tuple[str, ...], ScenarioSpace] = {}

    def key(self, as_of: dt.date) -> tuple[str, ...]:
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


def scenario_scope(table: pl.DataFrame, library: tuple[Scenario, ...]) -> list[str]:
    by_id = {s.id: s for s in library}
    return [
        json.dumps(
            {
                "entity_type": "SCENARIO",
                "scenario_id": sid,
                "source": "scenarios",
                "metadata": {**by_id[sid].metadata(), "path_source": src},
            },
            separators=(",", ":"),
        )
        for sid, src in zip(table["scenario_id"], table["path_source"], strict=True)
    ]


def scenario_rows(space: ScenarioSpace, scopes: list[str], dates: list[dt.date]) -> pl.DataFrame:
    s = space.table.height
    one = pl.DataFrame(
        {
            "joint_type": JOINT_TYPE,
            "entity_scope": scopes,
            "model_id": JOINT_MODEL_ID,
            "vector": pl.Series(space.vectors, dtype=VECTOR_TYPE),
            "kind": "scenario",
            "scenario_id": space.table["scenario_id"],
            "features_null": space.features["features_null"],
            "_order": np.arange(s),
        }
    )
    return pl.DataFrame({"as_of_date": dates}, schema={"as_of_date": pl.Date}).join(
        one, how="cross"
    )
