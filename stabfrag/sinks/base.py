"""One sink interface: write() stages a partition, commit() publishes what was staged.

Nothing is visible before commit, and leaving the `with` block without commit rolls back
(dlt's destination shape). Parquet, PostgreSQL and any later sink implement it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from stabfrag.errors import SinkError


@dataclass(frozen=True)
class Partition:
    """Everything built for one as-of date."""

    as_of: dt.date
    tables: dict[str, pl.DataFrame]  # joint_embeddings, features, rejects, scenarios
    manifest: dict[str, Any] = field(default_factory=dict)
    # What the run summary counts for this date (rows read, rejects by reason, states...).
    tally: dict[str, Any] = field(default_factory=dict)


class Sink:
    """The base of every sink: stage with write(), publish with commit(), or roll back."""

    committed = False
    name = "sink"  # what the run summary's timings call its writes: write_<name>

    def prepare(self) -> None:
        """Check the destination before any work (default: nothing to check)."""

    def write(self, partition: Partition) -> None:
        """Check the partition, then stage it: no non-finite value ever reaches a sink."""
        check_finite(partition)
        self.stage(partition)

    def stage(self, partition: Partition) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Sink:
        self.committed = False
        self.prepare()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.rollback()


def check_finite(partition: Partition) -> None:
    """Refuse a partition whose vectors or float columns hold NaN or infinity."""
    for name, frame in partition.tables.items():
        if frame.height == 0:
            continue
        if "vector" in frame.columns and not np.isfinite(frame["vector"].to_numpy()).all():
            raise SinkError(f"{name} {partition.as_of}: a vector holds non-finite values")
        floats = [col for col, dtype in frame.schema.items() if dtype.is_float()]
        if not floats:
            continue
        # One pass over every float column (a query per column costs more than the check).
        bad = frame.select(pl.col(floats).is_nan().any() | pl.col(floats).is_infinite().any())
        for col, found in bad.row(0, named=True).items():
            if found:
                raise SinkError(f"{name} {partition.as_of}: column {col} holds non-finite values")
