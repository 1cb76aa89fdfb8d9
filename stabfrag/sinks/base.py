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
    # True when the tables this partition was cut from passed check_tables: a query per
    # table and date costs more than the writes of a small partition.
    finite_checked: bool = False


class Sink:
    """The base of every sink: stage with write(), publish with commit(), or roll back."""

    committed = False
    name = "sink"  # what the run summary's timings call its writes: write_<name>

    def prepare(self) -> None:
        """Check the destination before any work (default: nothing to check)."""

    def write(self, partition: Partition) -> None:
        """Check the partition, then stage it: no non-finite value ever reaches a sink."""
        if not partition.finite_checked:
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
        found = first_nonfinite(frame)
        if found is not None:
            raise SinkError(_nonfinite_message(name, partition.as_of, found[0]))


def check_tables(tables: dict[str, pl.DataFrame]) -> None:
    """check_finite on whole tables (an `as_of_date` column each) before they are cut into
    partitions: the error names the first date that holds the value."""
    for name, frame in tables.items():
        found = first_nonfinite(frame)
        if found is not None:
            column, row = found
            raise SinkError(_nonfinite_message(name, frame["as_of_date"][row], column))


VECTOR_ROWS = 16_384  # vectors checked per block (25 MB of float32)
UNIT = 1e-3  # |squared norm - 1| a float32 unit vector stays within
UNIT_LENGTH = "vector length"


def first_nonfinite(frame: pl.DataFrame) -> tuple[str, int] | None:
    """The first column (the vector first) holding NaN or infinity, and a row where it
    does; None when every value is finite or null."""
    if frame.height == 0:
        return None
    if "vector" in frame.columns:
        vectors = frame["vector"]
        for lo in range(0, frame.height, VECTOR_ROWS):  # blocks: no copy of a whole chunk
            block = vectors.slice(lo, VECTOR_ROWS).to_numpy()
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                return "vector", lo + int(np.argmin(finite))
            # A zero (or overflowed) vector is finite but means nothing: unit length only.
            unit = np.abs(np.einsum("ij,ij->i", block, block, dtype=np.float64) - 1.0) <= UNIT
            if not unit.all():
                return UNIT_LENGTH, lo + int(np.argmin(unit))
    floats = [col for col, dtype in frame.schema.items() if dtype.is_float()]
    if not floats:
        return None
    # One pass over every float column (a query per column costs more than the check).
    bad = frame.select(pl.col(floats).is_nan().any() | pl.col(floats).is_infinite().any())
    for col, found in bad.row(0, named=True).items():
        if found:
            return col, int((~frame[col].is_finite()).fill_null(False).arg_max() or 0)
    return None


def _nonfinite_message(table: str, as_of: object, column: str) -> str:
    if column == UNIT_LENGTH:
        return f"{table} {as_of}: a vector is not of unit length (a zero or overflowed vector)"
    if column == "vector":
        return f"{table} {as_of}: a vector holds non-finite values"
    return f"{table} {as_of}: column {column} holds non-finite values"
