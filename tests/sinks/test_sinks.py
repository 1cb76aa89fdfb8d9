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


def _blocks(partition: Partition, count: int) -> list[Partition]:
    """The partition cut into `count` entity blocks, the scenario rows in the last."""
    joint = partition.tables["joint_embeddings"]
    entities = joint.filter(pl.col("kind") == "entity")
    cuts = [entities.height * b // count for b in range(count + 1)]
    parts = []
    for b in range(count):
        rows = entities.slice(cuts[b], cuts[b + 1] - cuts[b])
        tables = {"joint_embeddings": rows}
        if b == count - 1:
            tables["joint_embeddings"] = pl.concat([rows, joint.filter(pl.col("kind") != "entity")])
            tables["scenarios"] = partition.tables["scenarios"]
        parts.append(Partition(partition.as_of, tables, {"block": b}))
    return parts


def _stage_blocks(out: Path, partition: Partition, count: int) -> list[dict]:
    import json

    from stabfrag.sinks.blocks import block_manifest_path

    for b, part in enumerate(_blocks(partition, count)):
        _commit(ParquetSink(out, block=b), part)
    return [
        json.loads(block_manifest_path(out, partition.as_of, b).read_text()) for b in range(count)
    ]


def test_staging_leaves_a_sibling_blocks_file_in_flight(
    tmp_path: Path, partition: Partition
) -> None:
    """A stale-file cleanup removes only the file's own temporaries, never another task's."""
    from stabfrag.sinks.dataset import partition_dir

    folder = partition_dir(tmp_path, "joint_embeddings", partition.as_of)
    folder.mkdir(parents=True)
    sibling = folder / ".part-1.parquet.0123.tmp"  # another writer's file, being written
    own_stale = folder / ".part-0.parquet.4567.tmp"  # left by a killed run of this file
    sibling.write_bytes(b"in flight")
    own_stale.write_bytes(b"garbage")
    _commit(ParquetSink(tmp_path), partition)
    assert sibling.exists() and not own_stale.exists()


def test_a_killed_runs_manifest_temporary_is_cleaned_by_the_rebuild(
    tmp_path: Path, partition: Partition
) -> None:
    """A run killed between staging a partition and committing it leaves the manifest's
    temporary beside the tables'; the partition's rebuild removes both."""
    from stabfrag.sinks.dataset import MANIFEST, partition_dir

    folder = partition_dir(tmp_path, "joint_embeddings", partition.as_of)
    folder.mkdir(parents=True)
    stale = [folder / f".{MANIFEST}.89ab.tmp", folder / ".part-0.parquet.cdef.tmp"]
    for path in stale:
        path.write_bytes(b"left by a killed run")
    _commit(ParquetSink(tmp_path), partition)
    assert not any(path.exists() for path in stale)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_blocks_are_invisible_until_sealed_then_read_in_block_order(
    tmp_path: Path, partition: Partition
) -> None:
    import duckdb

    from stabfrag.sinks.blocks import seal
    from stabfrag.sinks.duckdb import search_path, view_sql

    manifests = _stage_blocks(tmp_path, partition, 3)
    assert partitions(tmp_path) == [] and read_manifest(tmp_path, partition.as_of) is None
    seal(tmp_path, partition.as_of, manifests, {"as_of_date": partition.as_of.isoformat()})
    assert partitions(tmp_path) == [partition.as_of]
    joint = read_table(tmp_path, "joint_embeddings", partition.as_of)
    assert joint.equals(partition.tables["joint_embeddings"])  # block order is entity order
    assert read_table(tmp_path, "scenarios", partition.as_of).equals(partition.tables["scenarios"])
    assert not list(tmp_path.rglob(".blocks"))
    con = duckdb.connect()
    search_path(con, tmp_path)
    con.execute(view_sql()[0])
    assert con.execute("SELECT count(*) FROM joint_embeddings").fetchone() == (joint.height,)


def test_a_rebuild_in_fewer_blocks_leaves_no_stale_block(
    tmp_path: Path, partition: Partition
) -> None:
    """Nothing doubled: files of an earlier build with more blocks go with the new one."""
    from stabfrag.sinks.blocks import seal

    manifest = {"as_of_date": partition.as_of.isoformat()}
    seal(tmp_path, partition.as_of, _stage_blocks(tmp_path, partition, 3), manifest)
    seal(tmp_path, partition.as_of, _stage_blocks(tmp_path, partition, 2), manifest)
    expected = partition.tables["joint_embeddings"]
    assert read_table(tmp_path, "joint_embeddings", partition.as_of).equals(expected)
    _commit(ParquetSink(tmp_path), partition)  # and a one-process build over it
    assert read_table(tmp_path, "joint_embeddings", partition.as_of).equals(expected)
    folder = tmp_path / "joint_embeddings" / f"as_of_date={partition.as_of}"
    assert sorted(p.name for p in folder.glob("part-*")) == ["part-0.parquet"]


def test_a_block_whose_file_went_is_built_again(tmp_path: Path, partition: Partition) -> None:
    """A seal cut short moved some files: their blocks no longer count as staged."""
    from stabfrag.sinks.blocks import staged_block

    manifests = _stage_blocks(tmp_path, partition, 2)
    assert staged_block(tmp_path, partition.as_of, 0, {"block": 0}) == manifests[0]
    assert staged_block(tmp_path, partition.as_of, 0, {"block": 1}) is None  # other identity
    (tmp_path / manifests[0]["files"][0]).unlink()
    assert staged_block(tmp_path, partition.as_of, 0, {"block": 0}) is None


def test_the_scenarios_view_reads_a_folder_of_two_versions(tmp_path: Path) -> None:
    """A folder built over months holds the scenarios tables of more than one version of
    the program (a date rebuilt now, beside dates built before the table gained
    context_as_of): the view reads every row, by column name."""
    import duckdb

    from stabfrag.schema import SCENARIOS_TABLE_SCHEMA
    from stabfrag.sinks.dataset import partition_dir
    from stabfrag.sinks.duckdb import search_path, view_sql

    now = pl.DataFrame(
        {"as_of_date": [dt.date(2020, 1, 1)], "scenario_id": ["SCN_A"]},
        schema={"as_of_date": pl.Date, "scenario_id": pl.String},
    ).with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in SCENARIOS_TABLE_SCHEMA.items()
        if name not in ("as_of_date", "scenario_id")
    )
    now = now.with_columns(pl.lit(dt.date(2019, 12, 2)).alias("context_as_of"))
    before = now.drop("context_as_of").with_columns(
        pl.lit(dt.date(2020, 1, 2)).alias("as_of_date"), pl.lit("SCN_B").alias("scenario_id")
    )
    for frame in (now, before):  # the earlier date is the newer version's
        folder = partition_dir(tmp_path, "scenarios", frame["as_of_date"][0])
        folder.mkdir(parents=True)
        frame.write_parquet(folder / "part-0.parquet")
    con = duckdb.connect()
    search_path(con, tmp_path)
    con.execute(view_sql()[3])
    rows = con.execute(
        "SELECT scenario_id, context_as_of FROM scenarios ORDER BY scenario_id"
    ).fetchall()
    assert rows == [("SCN_A", dt.date(2019, 12, 2)), ("SCN_B", None)]
