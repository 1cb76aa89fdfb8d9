"""One contract, every sink: round trip, re-run replaces, failure commits nothing, empty slice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stabfrag.sinks.base import Partition, Sink
from stabfrag.sinks.dataset import partitions, read_manifest, read_table
from stabfrag.sinks.parquet import ParquetSink


@dataclass
class Case:
    make: Callable[[], Sink]
    vectors: Callable[[dt.date], np.ndarray]  # what a reader sees for a date: (rows, 384)


def _parquet(tmp_path: Path) -> Case:
    out = tmp_path / "out"

    def vectors(day: dt.date) -> np.ndarray:
        if read_manifest(out, day) is None:  # an uncommitted partition is not there
            return np.zeros((0, 384), dtype=np.float32)
        frame = read_table(out, "joint_embeddings", day)
        return frame["vector"].to_numpy().reshape(-1, 384)

    return Case(lambda: ParquetSink(out), vectors)


def _postgres(pg_dsn: str, pg_schema: str) -> Case:
    import psycopg
    from psycopg import sql

    from stabfrag.sinks.postgres import PostgresSink, init_table

    table = f"{pg_schema}.joint_embeddings"
    init_table(pg_dsn, table)

    def vectors(day: dt.date) -> np.ndarray:
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                sql.SQL("SELECT vector FROM {} WHERE as_of_date = %s ORDER BY joint_id").format(
                    sql.Identifier(pg_schema, "joint_embeddings")
                ),
                [day],
            ).fetchall()
        return np.array([np.frombuffer(r[0], "<f4") for r in rows]).reshape(-1, 384)

    return Case(lambda: PostgresSink(pg_dsn, table), vectors)


@pytest.fixture(params=["parquet", pytest.param("postgres", marks=pytest.mark.pg)])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    if request.param == "parquet":
        yield _parquet(tmp_path)
    else:
        pg_dsn = request.getfixturevalue("pg_dsn")
        yield _postgres(pg_dsn, request.getfixturevalue("pg_schema"))


@pytest.fixture(scope="module")
def partition(built: Path) -> Partition:
    day = partitions(built)[-1]
    tables = {t: read_table(built, t, day) for t in ("joint_embeddings", "features", "rejects")}
    tables["scenarios"] = read_table(built, "scenarios", day)
    return Partition(as_of=day, tables=tables, manifest={"as_of_date": day.isoformat()})


def _commit(sink: Sink, part: Partition) -> None:
    with sink:
        sink.write(part)
        sink.commit()


def _expected(part: Partition) -> np.ndarray:
    return part.tables["joint_embeddings"]["vector"].to_numpy().reshape(-1, 384)


def test_round_trip(case: Case, partition: Partition) -> None:
    _commit(case.make(), partition)
    assert np.array_equal(case.vectors(partition.as_of), _expected(partition))


def test_rerun_replaces(case: Case, partition: Partition) -> None:
    _commit(case.make(), partition)
    _commit(case.make(), partition)
    assert np.array_equal(case.vectors(partition.as_of), _expected(partition))


def test_failure_commits_nothing(case: Case, partition: Partition) -> None:
    sink = case.make()
    with pytest.raises(RuntimeError), sink:
        sink.write(partition)
        raise RuntimeError("the build failed after staging")
    assert len(case.vectors(partition.as_of)) == 0


def test_failure_keeps_the_previous_contents(case: Case, partition: Partition) -> None:
    _commit(case.make(), partition)
    half = partition.tables["joint_embeddings"].head(3)
    changed = Partition(partition.as_of, {**partition.tables, "joint_embeddings": half})
    sink = case.make()
    with pytest.raises(RuntimeError), sink:
        sink.write(changed)
        raise RuntimeError("killed before commit")
    assert np.array_equal(case.vectors(partition.as_of), _expected(partition))


def test_empty_slice(case: Case, partition: Partition) -> None:
    empty = {name: frame.head(0) for name, frame in partition.tables.items()}
    _commit(case.make(), Partition(partition.as_of, empty, partition.manifest))
    assert len(case.vectors(partition.as_of)) == 0


def test_parquet_empty_slice_keeps_the_schema(tmp_path: Path, partition: Partition) -> None:
    from stabfrag.sinks.dataset import TABLE_SCHEMAS

    sink = ParquetSink(tmp_path)
    _commit(sink, Partition(partition.as_of, {"joint_embeddings": pl.DataFrame()}, {}))
    frame = read_table(tmp_path, "joint_embeddings", partition.as_of)
    assert frame.height == 0 and frame.schema == TABLE_SCHEMAS["joint_embeddings"]
