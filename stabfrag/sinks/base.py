"""One sink interface: write() stages a partition, commit() publishes what was staged.

Nothing is visible before commit, and leaving the `with` block without commit rolls back
(dlt's destination shape). Parquet, PostgreSQL and any later sink implement it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Partition:
    """Everything built for one as-of date."""

    as_of: dt.date
    tables: dict[str, pl.DataFrame]  # joint_embeddings, features, rejects, scenarios
    manifest: dict[str, Any] = field(default_factory=dict)


class Sink:
    """The base of every sink: stage with write(), publish with commit(), or roll back."""

    committed = False

    def prepare(self) -> None:
        """Check the destination before any work (default: nothing to check)."""

    def write(self, partition: Partition) -> None:
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
