"""Entity blocks: a backfill split by entity as well as by date, for many workers.

Block b holds the entity ids in [lo, hi) of the sorted ids of the prices, so the blocks of
a date, read in block order, list entities in the order a one-block build writes them.
A row without an entity id belongs to block 0 (it becomes a reject there, once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stabfrag.ingest.prices import collect, scan_prices
from stabfrag.schema import ENTITY


@dataclass(frozen=True)
class EntityBlock:
    index: int
    count: int
    lo: str | None  # first entity id of the block; None: from the first
    hi: str | None  # first entity id of the next block; None: to the last

    @property
    def last(self) -> bool:
        """The last block writes each date's scenario rows (they follow the entities)."""
        return self.index == self.count - 1

    def expr(self) -> pl.Expr | None:
        """The block's rows, as a filter pushed down to the prices scan (None: every row)."""
        if self.count == 1:
            return None
        eid = pl.col(ENTITY)
        cond = pl.lit(True)
        if self.lo is not None:
            cond = cond & (eid >= self.lo)
        if self.hi is not None:
            cond = cond & (eid < self.hi)
        if self.index == 0:
            cond = cond | eid.is_null()
        return cond

    def describe(self) -> str:
        return f"entity block {self.index + 1} of {self.count}"


ALL_ENTITIES = EntityBlock(0, 1, None, None)  # a run not split by entity


def entity_blocks(prices: Path, count: int) -> list[EntityBlock]:
    """`count` blocks of about as many entity ids each (fewer when there are fewer ids)."""
    if count == 1:
        return [ALL_ENTITIES]
    ids = collect(scan_prices(prices).select(pl.col(ENTITY).drop_nulls().unique().sort()), prices)[
        ENTITY
    ]
    count = max(1, min(count, ids.len()))
    bounds: list[str | None] = [None, *(ids[ids.len() * b // count] for b in range(1, count)), None]
    return [EntityBlock(b, count, bounds[b], bounds[b + 1]) for b in range(count)]
