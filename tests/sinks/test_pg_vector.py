"""db init --vector-index: the pgvector column, its HNSW index and the shipped analog
query where the server has the extension; one line and the plain table where not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.config import packaged
from stabfrag.schema import DIM
from stabfrag.sinks import pg_vector
from stabfrag.sinks.dataset import partitions, read_table
from stabfrag.sinks.pgcopy import RowEncoder

runner = CliRunner()


def test_the_column_type_follows_the_extension_version() -> None:
    assert pg_vector.type_for(None)[0] is None
    assert "does not have the pgvector extension" in pg_vector.type_for(None)[1]
    assert pg_vector.type_for("0.4.4")[0] is None  # no HNSW before 0.5
    assert pg_vector.type_for("0.6.2")[0] is pg_vector.VECTOR
    assert pg_vector.type_for("0.7.0")[0] is pg_vector.HALFVEC
    assert pg_vector.type_for("0.8.1")[0] is pg_vector.HALFVEC


@pytest.mark.parametrize("kind", [pg_vector.HALFVEC, pg_vector.VECTOR], ids=lambda k: k.name)
def test_a_copy_tuple_carries_the_embedding_as_pgvector_reads_it(
    kind: pg_vector.VectorType,
) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5, DIM)).astype(np.float32)
    scopes = pl.Series(['{"entity_id":"A"}', '{"entity_id":"BB"}'] * 2 + ["{}"]).to_arrow()
    plain = RowEncoder(joint_type="j", model_id="m", json_width=18)
    wide = RowEncoder(joint_type="j", model_id="m", json_width=18, embedding=kind)
    dates = np.arange(5, dtype=np.int32)
    rows = np.frombuffer(wide.encode(dates, scopes, vectors), np.uint8).reshape(5, -1)
    before = np.frombuffer(plain.encode(dates, scopes, vectors), np.uint8).reshape(5, -1)
    width = before.shape[1]
    assert (rows[:, 2:width] == before[:, 2:width]).all()  # the five columns as before
    assert (rows[:, :2] == np.frombuffer(np.int16(6).byteswap().tobytes(), np.uint8)).all()
    tail = rows[:, width:]
    size = np.dtype(kind.element).itemsize * DIM
    assert (tail[:, :4].copy().view(">i4") == 4 + size).all()
    assert (tail[:, 4:6].copy().view(">i2") == DIM).all() and (tail[:, 6:8] == 0).all()
    values = tail[:, 8:].copy().view(kind.element).astype(np.float32)
    assert np.allclose(values, vectors, rtol=1e-3, atol=1e-3)


def test_without_the_extension_init_says_so_in_one_line_and_loads_work(
    pg_dsn: str, pg_schema: str, built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_vector, "available", lambda cur: None)
    table = f"{pg_schema}.joint_embeddings"
    res = runner.invoke(
        app, ["db", "init", "--vector-index", "--pg-dsn", pg_dsn, "--pg-table", table]
    )
    assert res.exit_code == 0, res.output
    notes = [line for line in res.stdout.splitlines() if "vector index" in line]
    assert len(notes) == 1 and "does not have the pgvector extension" in notes[0]
    res = runner.invoke(app, ["load", "--out", str(built), "--pg-dsn", pg_dsn, "--pg-table", table])
    assert res.exit_code == 0, res.stderr
    with psycopg.connect(pg_dsn) as conn:
        cols = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s",
            [pg_schema],
        ).fetchall()
    assert ("embedding",) not in cols


def _psql(
    conn: psycopg.Connection, name: str, schema: str, explain: bool = False, **params: object
) -> list:
    """Run a shipped query file statement by statement, its psql variables filled in."""
    text = packaged("sql", "postgres", name).read_text()
    for key in params:
        text = text.replace(f":'{key}'", f"%({key})s").replace(f":{key}", f"%({key})s")
    # (the extension's types and operators live where it was created: public here)
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    *setup, query = [s.strip() for s in body.split(";") if s.strip()]
    for stmt in setup:
        conn.execute(stmt)  # type: ignore[arg-type]
    return conn.execute(("EXPLAIN " if explain else "") + query, params).fetchall()  # type: ignore[arg-type]


def test_the_hnsw_index_answers_the_shipped_analog_query(
    pg_dsn: str, pg_schema: str, built: Path
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        version = pg_vector.available(conn.cursor())
    kind, note = pg_vector.type_for(version)
    if kind is None:
        pytest.skip(f"this PostgreSQL: {note}")
    table = f"{pg_schema}.joint_embeddings"
    init = ["db", "init", "--partitioned", "--pg-dsn", pg_dsn, "--pg-table", table]
    # A bulk load goes into the column alone; the index is built over it afterwards.
    res = runner.invoke(app, [*init, "--vector-column"])
    assert res.exit_code == 0 and f"{kind.declared} column embedding" in res.stdout, res.output
    assert "no HNSW index" in res.stdout
    res = runner.invoke(app, ["load", "--out", str(built), "--pg-dsn", pg_dsn, "--pg-table", table])
    assert res.exit_code == 0, res.stderr
    with psycopg.connect(pg_dsn) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s", [pg_schema]
        ).fetchall()
    assert not any("hnsw" in i[0] for i in indexes)
    res = runner.invoke(app, [*init, "--vector-index"])
    assert res.exit_code == 0 and "HNSW index" in res.stdout, res.output
    assert "have none" not in res.stdout  # every loaded row has its embedding
    # The staged form fills the column too (the reload replaces every row).
    load = ["load", "--out", str(built), "--pg-dsn", pg_dsn, "--pg-table", table]
    res = runner.invoke(app, [*load, "--pg-staging"])
    assert res.exit_code == 0, res.stderr
    states = pl.concat(
        [read_table(built, "joint_embeddings", p) for p in partitions(built)]
    ).filter(pl.col("kind") == "entity")
    last = states["as_of_date"].max()
    query = states.filter(pl.col("as_of_date") == last).row(0, named=True)
    pool = states.filter(
        (pl.col("as_of_date") < last) & (pl.col("entity_id") != query["entity_id"])
    )
    sims = pool["vector"].to_numpy() @ np.asarray(query["vector"], dtype=np.float64)
    exact = pool.with_columns(pl.Series("sim", sims)).sort("sim", descending=True).head(10)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SET enable_sort = off")  # the HNSW order, not a sort of a small table
        got = _psql(
            conn,
            "analogs.sql",
            pg_schema,
            entity_id=query["entity_id"],
            as_of=last,
            gap_days=0,
            k=10,
        )
        plan = _psql(
            conn,
            "analogs.sql",
            pg_schema,
            True,
            entity_id=query["entity_id"],
            as_of=last,
            gap_days=0,
            k=10,
        )
        stored = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE embedding IS NULL").format(
                sql.Identifier(pg_schema, "joint_embeddings")
            )
        ).fetchone()
    assert stored == (0,)
    assert "Order By: (embedding <=> " in "\n".join(r[0] for r in plan)  # the HNSW scan
    assert len(got) == 10 and all(isinstance(r[1], dt.date) and r[1] < last for r in got)
    want = set(zip(exact["entity_id"], exact["as_of_date"], strict=True))
    assert len(want & {(r[0], r[1]) for r in got}) >= 9
    assert np.allclose([r[3] for r in got], sorted(exact["sim"], reverse=True), atol=2e-3)
