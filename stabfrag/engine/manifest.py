"""What a partition records of how it was made: the input fingerprint and the manifests.

Built here and only here: the date's `_manifest.json` (written last when a date is sealed,
whichever executor ran) and the block manifest a task stages beside its files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from stabfrag import __version__
from stabfrag.config import BAD_TICK_MULTIPLE, BuildConfig
from stabfrag.engine.entity_blocks import EntityBlock
from stabfrag.engine.tally import Tally
from stabfrag.ingest.files import file_hash
from stabfrag.scenarios.library import Scenario


def fingerprint(
    config: BuildConfig, library: tuple[Scenario, ...], weights: dict[str, float]
) -> str:
    """What a partition was made from: input bytes, scenario library and settings."""
    payload = {
        "prices": file_hash(config.prices),
        "entities": file_hash(config.entities),
        "profiles": file_hash(config.profiles),
        "scenarios": [repr(s) for s in library],
        "weights": weights,
        "max_staleness_days": config.max_staleness_days,
        "version": __version__,
        # Only when not the default, so a default build keeps its fingerprint.
        **({"bad_tick": config.bad_tick} if config.bad_tick != BAD_TICK_MULTIPLE else {}),
        # Only when set, so a build without a market reference keeps its fingerprint.
        **({"market": config.market} if config.market else {}),
        **({"factors": config.factors} if config.factors else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RunIdentity:
    """What every partition of a run records: its inputs, models and settings."""

    config: BuildConfig
    fingerprint: Future[str] | str  # hashed beside the first chunk; resolved before a task
    models: dict[str, str]  # model id -> hash
    model_id: str
    weights: dict[str, float]
    tau: float

    @property
    def input_fingerprint(self) -> str:
        """What the run's partitions are made from (see `fingerprint`)."""
        pending = self.fingerprint
        return pending if isinstance(pending, str) else pending.result()

    def partition(self, as_of: dt.date, counts: dict[str, int], blocks: int) -> dict[str, Any]:
        """The date's manifest, written last when the date is sealed."""
        cfg = self.config
        return {
            "as_of_date": as_of.isoformat(),
            "input_fingerprint": self.input_fingerprint,
            # The prices' own hash: evaluate --prices checks it is given the same prices.
            "prices_hash": file_hash(cfg.prices),
            "models": self.models,
            # What evaluate reloads: the library and models this partition was built with.
            "model_dir": None if cfg.model_dir is None else str(cfg.model_dir),
            "model": self.model_id,
            "market": cfg.market,
            **({"factors": cfg.factors} if cfg.factors else {}),
            "scenario_library": None if cfg.scenarios is None else str(cfg.scenarios),
            "weights": self.weights,
            "tau": self.tau,
            "bad_tick": cfg.bad_tick,
            "counts": counts,
            "stabfrag_version": __version__,
            **({"entity_blocks": blocks} if blocks > 1 else {}),
        }

    def block(self, block: EntityBlock) -> dict[str, Any]:
        """What a staged block must match to be reused by --resume."""
        return {
            "input_fingerprint": self.input_fingerprint,
            "models": self.models,
            "block": block.index,
            "blocks": block.count,
            "bounds": [block.lo, block.hi],
        }

    def staged(
        self, as_of: dt.date, block: EntityBlock, counts: dict[str, int], tally: Tally
    ) -> dict[str, Any]:
        """A block's manifest, staged last beside its files (the sink adds their names)."""
        return {
            "as_of_date": as_of.isoformat(),
            **self.block(block),
            "counts": counts,
            "tally": tally.as_json(),
        }

    def is_complete(self, manifest: dict[str, Any] | None) -> bool:
        """Whether a sealed date's manifest was made from this run's inputs and models."""
        return bool(
            manifest
            and manifest.get("input_fingerprint") == self.input_fingerprint
            and manifest.get("models") == self.models
        )
