"""Destinations for built partitions, behind one small interface."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl


@dataclass(frozen=True)
class Partition:
    """Everything built for one as-of date."""

    as_of: dt.date
    tables: dict[str, pl.DataFrame]  # joint_embeddings, features, rejects, scenarios
    manifest: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    """write() stages, commit() publishes; leaving the with block uncommitted rolls back."""

    def write(self, partition: Partition) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def __enter__(self) -> Sink: ...

    def __exit__(self, *exc: object) -> None: ...


class SinkBase:
    """The with-block contract shared by every sink."""

    committed = False

    def write(self, partition: Partition) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def commit(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def rollback(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __enter__(self) -> SinkBase:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.rollback()
