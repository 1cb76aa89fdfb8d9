"""Analogs among every entity's past states: through the analog index when it is fresh for
the query, else exactly over the Parquet partitions. Both answer the same question: the
k states most similar to a vector among those of dates strictly before the as-of date
and at least min_gap_days before it, optionally leaving one entity out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.errors import ConfigError, QueryError
from stabfrag.index import store
from stabfrag.index.build import (
    DIM,
    KEY_COLUMNS,
    gather,
    project,
    read_month,
    segment_vectors,
)
from stabfrag.logs import LOGGER
from stabfrag.sinks.dataset import partitions, read_tables

# the graph over the list centres is searched this many times wider than the lists kept
COARSE_EF = 4

RESULT_SCHEMA = pl.Schema(
    {
        "as_of_date": pl.Date,
        "entity_id": pl.String,
        "similarity": pl.Float64,
        "fragility": pl.Float64,
        "nearest_scenario_id": pl.String,
    }
)


def last_eligible(as_of: dt.date, min_gap_days: int) -> dt.date:
    """The newest date a state may have to be an analog as of `as_of`: strictly before it,
    and at least `min_gap_days` calendar days before it."""
    return as_of - dt.timedelta(days=max(1, min_gap_days))


@dataclass
class AnalogIndex:
    """An opened index: the lists in memory, the segments' keys, and up to which date it
    still matches the partitions (`valid_before`, None when it matches them all)."""

    out: Path
    manifest: dict[str, Any]
    valid_before: dt.date | None
    why_stale: str
    lists: Any
    keys: pl.DataFrame
    days: np.ndarray  # each id's as_of_date as days since 1970, ascending
    own: dict[str, np.ndarray] = field(repr=False)  # each entity's ids, ascending
    projection: np.ndarray = field(repr=False)
    mapped: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, out: Path) -> AnalogIndex | None:
        """The folder's index, or None when it has none (or, said in one line, when faiss
        is not installed)."""
        manifest = store.read_index_manifest(out)
        if manifest is None:
            return None
        try:
            faiss = store.import_faiss()
        except ConfigError as exc:
            LOGGER.warning(f"{exc}; searching exactly")
            return None
        broken = store.damaged(out, manifest)
        if broken:
            LOGGER.warning(
                f"analog index damaged ({broken}); searching exactly "
                "(stabfrag index build makes it again)"
            )
            return None
        valid_before, why = store.staleness(out, manifest, store.built(out))
        folder = store.index_dir(out)
        # mapped, not read: a one-query process starts at once, and the pages it reads
        # stay in the system's cache for the next process
        lists = faiss.read_index(str(folder / store.LISTS), faiss.IO_FLAG_MMAP)
        lists.parallel_mode = 1  # one query's lists on every core (2x here), not one each
        paths = [folder / store.SEGMENTS / f"{s['month']}.parquet" for s in manifest["segments"]]
        keys = pl.concat([pl.read_parquet(p) for p in paths]).select(KEY_COLUMNS)
        days = keys["as_of_date"].cast(pl.Int32).to_numpy()
        groups = keys.select("entity_id").with_row_index("id").group_by("entity_id").agg("id")
        own = {
            name: np.asarray(ids, dtype=np.int64)
            for name, ids in zip(groups["entity_id"], groups["id"].to_list(), strict=True)
        }
        projection = np.load(folder / store.PROJECTION)
        return cls(out, manifest, valid_before, why, lists, keys, days, own, projection)

    def fresh_for(self, last: dt.date) -> bool:
        """Whether every state of dates up to `last` is in the index as built."""
        return self.valid_before is None or last < self.valid_before

    def vector_of(self, entity: str, as_of: dt.date) -> np.ndarray | None:
        """An indexed state's stored vector, or None when the index does not hold it."""
        if not self.fresh_for(as_of):
            return None
        ids = self.own.get(entity)
        if ids is None:
            return None
        at = np.searchsorted(self.days[ids], _day(as_of))
        if at == len(ids) or self.days[ids[at]] != _day(as_of):
            return None
        return self._vectors(ids[at : at + 1])[0]

    def eligible(self, last: dt.date, exclude: str | None) -> tuple[int, np.ndarray]:
        """(cut, own): the states of dates up to `last` are the ids [0, cut); `own` are
        the ids among them of the entity left out (none when `exclude` is None)."""
        cut = int(np.searchsorted(self.days, _day(last), side="right"))
        own = self.own.get(exclude, np.empty(0, np.int64)) if exclude else np.empty(0, np.int64)
        return cut, own[own < cut]

    def search(
        self, vector: np.ndarray, last: dt.date, exclude: str | None, k: int
    ) -> pl.DataFrame:
        """The k nearest states of dates up to `last`, leaving out `exclude`'s states. The
        filter is part of the search: lists are widened until the candidates hold
        `depth` eligible states or every list is searched, so k results come back
        whenever k eligible states exist."""
        faiss = store.import_faiss()
        cut, own = self.eligible(last, exclude)
        eligible = cut - len(own)
        if eligible <= 0 or k <= 0:
            return pl.DataFrame(schema=RESULT_SCHEMA)
        params = self.manifest["params"]
        depth, nprobe, lists = max(params["depth"], k), params["nprobe"], params["lists"]
        selector = faiss.IDSelectorRange(0, cut)
        if len(own):
            batch = faiss.IDSelectorBatch(own)
            selector = faiss.IDSelectorAnd(selector, faiss.IDSelectorNot(batch))
        query = _unit(vector).reshape(1, DIM)
        while True:
            coarse = faiss.SearchParametersHNSW(efSearch=COARSE_EF * nprobe)
            search = faiss.SearchParametersIVF(
                sel=selector, nprobe=min(nprobe, lists), quantizer_params=coarse
            )
            _, found = self.lists.search(project(query, self.projection), depth, params=search)
            ids = found[0][found[0] >= 0]
            if len(ids) >= min(depth, eligible):
                break
            if nprobe >= lists:  # the graph over the lists missed some: read them all
                return self.scan(query[0], cut, own, k)
            nprobe *= 4
        vectors = self._vectors(ids)
        return self._rows(ids, vectors.astype(np.float64) @ query[0].astype(np.float64), k)

    def scan(self, query: np.ndarray, cut: int, own: np.ndarray, k: int) -> pl.DataFrame:
        """Exact search over the stored vectors of ids [0, cut) but `own`, a segment at a
        time (what the index answers when its lists cannot, and the benchmark's exact):
        float32 products, then the states within rounding of the k-th scored again in
        float64, so the order is exact search's."""
        unit = _unit(query)
        parts = []
        for segment in self.manifest["segments"]:
            first = segment["first_id"]
            if first >= cut:
                break
            parts.append(self._vectors_of(segment["month"])[: cut - first] @ unit)
        similarity = np.concatenate(parts) if parts else np.empty(0, np.float32)
        similarity[own] = -np.inf
        keep = min(k, cut - len(own))
        if keep <= 0:
            return pl.DataFrame(schema=RESULT_SCHEMA)
        kth = np.partition(-similarity, keep - 1)[keep - 1]
        near = np.flatnonzero(similarity >= -kth - 1e-4)
        exact = self._vectors(near).astype(np.float64) @ unit.astype(np.float64)
        return self._rows(near.astype(np.int64), exact, k)

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored float32 vectors by id, each segment memory-mapped once per opened index."""
        return gather(self.manifest["segments"], ids, self._vectors_of)

    def _vectors_of(self, month: str) -> np.ndarray:
        if month not in self.mapped:
            self.mapped[month] = segment_vectors(store.index_dir(self.out), month)
        return self.mapped[month]

    def _rows(self, ids: np.ndarray, similarity: np.ndarray, k: int) -> pl.DataFrame:
        """The k best of the candidates, ties to the earlier state: ids run in (date,
        entity) order, so this is exact search's order."""
        best = np.lexsort((ids, -similarity))[:k]
        rows = self.keys[ids[best]].with_columns(similarity=pl.Series(similarity[best]))
        return rows.select(RESULT_SCHEMA.names())


def find_analogs(
    out: Path,
    index: AnalogIndex | None,
    *,
    as_of: dt.date,
    entity: str | None = None,
    vector: np.ndarray | None = None,
    exclude: str | None = None,
    k: int = 10,
    min_gap_days: int = 180,
    exact: bool = False,
) -> pl.DataFrame:
    """The k past states nearest `vector` (or `entity`'s state on `as_of`) known as of
    `as_of`: through `index` when it is fresh up to the newest eligible date, else exactly
    (saying why in one line when an index exists but does not serve)."""
    last = last_eligible(as_of, min_gap_days)
    if vector is None:
        if entity is None:
            raise QueryError("give an entity or a vector to find analogs of")
        if index is not None and not exact:
            vector = index.vector_of(entity, as_of)
        if vector is None:
            vector = state_vector(out, entity, as_of)
    if index is not None and not exact:
        if index.fresh_for(last):
            return index.search(vector, last, exclude, k)
        LOGGER.warning(
            f"analog index is stale: {index.why_stale}; searching exactly "
            "(stabfrag index update refreshes it)"
        )
    return exact_search(out, vector, last, exclude, k)


def state_vector(out: Path, entity: str, as_of: dt.date) -> np.ndarray:
    """An entity's stored vector on a built date, read from its partition."""
    rows = read_tables(
        out, "joint_embeddings", [as_of], columns=["kind", "entity_id", "vector"]
    ).filter((pl.col("kind") == "entity") & (pl.col("entity_id") == entity))
    if rows.is_empty():
        raise QueryError(f"no state of {entity} on {as_of}")
    return np.asarray(rows["vector"][0].to_numpy(), dtype=np.float32)


def exact_search(
    out: Path, vector: np.ndarray, last: dt.date, exclude: str | None, k: int
) -> pl.DataFrame:
    """The same answer by brute force over the Parquet partitions, a month at a time (the
    memory of one month's vectors, whatever the history)."""
    query = _unit(vector).astype(np.float64)
    best = pl.DataFrame(schema=RESULT_SCHEMA)  # the k best of the months read so far
    for days in store.by_month([d for d in partitions(out) if d <= last]).values():
        rows = read_month(out, days).filter(pl.col("entity_id") != (exclude or ""))
        similarity = rows["vector"].to_numpy().astype(np.float64).reshape(-1, DIM) @ query
        found = rows.drop("vector").with_columns(similarity=similarity)
        best = _top(pl.concat([best, found.select(RESULT_SCHEMA.names())]), k)
    return best


def _top(frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """The k most similar rows; ties: the earlier date, then the entity id."""
    return frame.sort(
        ["similarity", "as_of_date", "entity_id"], descending=[True, False, False]
    ).head(k)


def _unit(vector: np.ndarray) -> np.ndarray:
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    if values.shape != (DIM,) or not np.isfinite(values).all():
        raise QueryError(f"an analog query is a vector of {DIM} finite numbers")
    norm = float(np.linalg.norm(values))
    if norm == 0.0:
        raise QueryError("an analog query vector is all zeros")
    return values / np.float32(norm)


def _day(day: dt.date) -> np.int32:
    """Days since 1970 as the key arrays hold them (a Python int would make numpy cast the
    whole array on every search)."""
    return np.int32((day - dt.date(1970, 1, 1)).days)
