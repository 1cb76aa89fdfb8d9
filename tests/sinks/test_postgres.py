"""The PostgreSQL sink against a real server, each test in its own schema."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.errors import SinkError
from stabfrag.sinks import pgcopy
from stabfrag.sinks.dataset import partitions, read_table
from stabfrag.sinks.postgres import init_table, load_frames

runner = CliRunner()


def _frame(built: Path, index: int = -1) -> pl.DataFrame:
    return read_table(built, "joint_embeddings", partitions(built)[index])


def _rows(dsn: str, table: str) -> list[tuple]:
    schema, name = table.split(".")
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL(
                "SELECT as_of_date, entity_scope, vector, joint_type, model_id FROM {} "
                "ORDER BY joint_id"
            ).format(sql.Identifier(schema, name))
        ).fetchall()


@pytest.fixture(params=[False, True], ids=["direct", "staged"])
def staging(request: pytest.FixtureRequest) -> bool:
    """Both load forms keep the same contract."""
    return bool(request.param)


@pytest.fixture
def table(pg_dsn: str, pg_schema: str) -> str:
    name = f"{pg_schema}.joint_embeddings"
    init_table(pg_dsn, name)
    return name


def test_init_is_idempotent_and_accepts_an_existing_table(pg_dsn: str, pg_schema: str) -> None:
    name = f"{pg_schema}.joint_embeddings"
    # Another system created it first, with its own index on the slice columns.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ident = sql.Identifier(pg_schema, "joint_embeddings")
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (joint_id bigserial PRIMARY KEY, joint_type varchar(32), "
                "as_of_date date, entity_scope jsonb, model_id varchar(64), vector bytea, "
                "vector_ref varchar(255), created_at timestamptz DEFAULT now())"
            ).format(ident)
        )
        conn.execute(
            sql.SQL("CREATE INDEX theirs ON {} (joint_type, as_of_date, model_id)").format(ident)
        )
    view = f'"{pg_schema}"."joint_embeddings_flat"'
    ready = ["table ready", f"entity-id index and view {view} ready"]
    assert init_table(pg_dsn, name) == ready
    assert init_table(pg_dsn, name) == ready
    res = runner.invoke(app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", f"{pg_schema}.other"])
    assert res.exit_code == 0 and "index created" in res.stdout
    res = runner.invoke(app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", f"{pg_schema}.other"])
    assert res.exit_code == 0 and "index created" not in res.stdout


def test_round_trip(pg_dsn: str, table: str, built: Path, staging: bool) -> None:
    frame = _frame(built)
    assert load_frames(pg_dsn, table, [frame], staging=staging).inserted == frame.height
    rows = _rows(pg_dsn, table)
    assert len(rows) == frame.height
    vectors = frame["vector"].to_numpy()
    for i, (day, scope, vec, jt, mid) in enumerate(rows):
        assert len(vec) == 1536
        assert np.array_equal(np.frombuffer(vec, dtype="<f4"), vectors[i])
        assert scope == json.loads(frame["entity_scope"][i])
        assert day == frame["as_of_date"][i] and jt == frame["joint_type"][i]
        assert mid == frame["model_id"][i]


def test_rerun_replaces_the_slice(pg_dsn: str, table: str, built: Path, staging: bool) -> None:
    a, b = _frame(built, 0), _frame(built, -1)
    load_frames(pg_dsn, table, [a, b], staging=staging)
    load_frames(pg_dsn, table, [b], staging=staging)
    load_frames(pg_dsn, table, [b], staging=staging)
    assert len(_rows(pg_dsn, table)) == a.height + b.height


def test_bad_row_in_last_batch_keeps_previous_contents(
    pg_dsn: str, table: str, built: Path, monkeypatch: pytest.MonkeyPatch, staging: bool
) -> None:
    frame = _frame(built)
    load_frames(pg_dsn, table, [frame], staging=staging)
    before = _rows(pg_dsn, table)
    bad = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == pl.len() - 1)
        .then(pl.lit("{not json"))
        .otherwise(pl.col("entity_scope"))
        .alias("entity_scope")
    )
    monkeypatch.setattr(pgcopy, "WRITE_BLOCK", 4096)  # many blocks: the bad row is in the last
    with pytest.raises(SinkError, match="failed"):
        load_frames(pg_dsn, table, [bad], staging=staging)
    assert _rows(pg_dsn, table) == before


def test_connection_killed_mid_load_keeps_previous_contents(
    pg_dsn: str, table: str, built: Path, monkeypatch: pytest.MonkeyPatch, staging: bool
) -> None:
    frame = _frame(built)
    load_frames(pg_dsn, table, [frame], staging=staging)
    before = _rows(pg_dsn, table)
    victim = f"{pg_dsn}?application_name=stabfrag_victim"
    monkeypatch.setattr(pgcopy, "WRITE_BLOCK", 4096)
    killed = []

    def kill(sent: int) -> None:
        if not killed and sent > 20_000:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                n = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'stabfrag_victim'"
                ).fetchone()
            killed.append(n)

    with pytest.raises(SinkError):
        load_frames(
            victim,
            table,
            [frame.with_columns(pl.lit(0.0).alias("fragility"))],
            hook=kill,
            staging=staging,
        )
    assert killed and killed[0][0] == 1
    assert _rows(pg_dsn, table) == before


def test_concurrent_loads_of_one_slice_leave_one_copy(
    pg_dsn: str, table: str, built: Path, staging: bool
) -> None:
    frame = _frame(built)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            load_frames(pg_dsn, table, [frame], staging=staging)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(_rows(pg_dsn, table)) == frame.height


def test_hostile_table_name_is_quoted(pg_dsn: str, pg_schema: str, built: Path) -> None:
    hostile = f'{pg_schema}."je""; DROP TABLE x; --"'  # quoted on purpose
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (a int)").format(sql.Identifier(pg_schema, "x")))
    init_table(pg_dsn, hostile)
    frame = _frame(built)
    load_frames(pg_dsn, hostile, [frame])
    with psycopg.connect(pg_dsn) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", [pg_schema]
            ).fetchall()
        }
    assert names == {"x", 'je"; DROP TABLE x; --'}
    with pytest.raises(SinkError, match="is not 'table' or 'schema.table' made of plain"):
        load_frames(pg_dsn, "a.b.c", [frame])


def test_hostile_entity_ids_round_trip(pg_dsn: str, table: str, built: Path, staging: bool) -> None:
    frame = _frame(built).head(3)
    ids = ['O\'Brien "Q" \\ path', "Zürich-Ωmega-日本", "semi;colon--"]
    frame = frame.with_columns(
        pl.Series("entity_scope", [json.dumps({"entity_id": i}) for i in ids])
    )
    load_frames(pg_dsn, table, [frame], staging=staging)
    got = [r[1]["entity_id"] for r in _rows(pg_dsn, table)]
    assert got == ids


def test_bad_credentials_and_unreachable_host_exit_1_without_secret(built: Path) -> None:
    """A database that refuses or does not answer fails the run (1: a retry may pass)."""
    secret = "s3cr3t-Pa55"
    for dsn in (
        f"postgresql://nobody_here:{secret}@127.0.0.1:5432/test",
        f"postgresql://root:{secret}@127.0.0.1:1/test",
        f"host=127.0.0.1 port=1 user=root password={secret} dbname=test",
    ):
        res = runner.invoke(app, ["load", "--out", str(built), "--pg-dsn", dsn])
        assert res.exit_code == 1
        assert len(res.stderr.strip().splitlines()) == 1
        assert secret not in res.stderr + res.stdout


def test_build_loads_what_it_built(
    pg_dsn: str, table: str, market_dir: Path, tmp_path: Path
) -> None:
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(tmp_path),
            "--pg-dsn",
            pg_dsn,
            "--pg-table",
            table,
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    frame = read_table(tmp_path, "joint_embeddings", dt.date(2024, 12, 31))
    assert len(_rows(pg_dsn, table)) == frame.height
    res = runner.invoke(
        app,
        [
            "load",
            "--out",
            str(tmp_path),
            "--pg-dsn",
            pg_dsn,
            "--pg-table",
            table,
            "--as-of",
            "2024-12-31",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert len(_rows(pg_dsn, table)) == frame.height


def _run_psql_file(conn: psycopg.Connection, name: str, schema: str, **params: object) -> list:
    """Run a shipped sql/postgres query file as psql would, its :'var' / :var filled in."""
    from stabfrag.config import packaged

    text = packaged("sql", "postgres", name).read_text()
    for key in params:
        text = text.replace(f":'{key}'", f"%({key})s").replace(f":{key}", f"%({key})s")
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn.execute(text.rstrip().rstrip(";"), params).fetchall()  # type: ignore[arg-type]


def test_sql_users_ask_plain_questions_of_the_view(
    pg_dsn: str, pg_schema: str, built: Path
) -> None:
    """The two questions a SQL user asks are one query each over the flat view, and they
    agree with the DuckDB answers of the same build."""
    from stabfrag.analysis.query import run_sql

    res = runner.invoke(
        app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", f"{pg_schema}.joint_embeddings"]
    )
    assert res.exit_code == 0 and "joint_embeddings_flat" in res.stdout, res.stdout
    res = runner.invoke(
        app,
        [
            "load",
            "--out",
            str(built),
            "--pg-dsn",
            pg_dsn,
            "--pg-table",
            f"{pg_schema}.joint_embeddings",
        ],
    )
    assert res.exit_code == 0, res.stderr
    day = partitions(built)[-1]
    expected = run_sql(built, "fragile", {"as_of": day, "top_n": 20})
    with psycopg.connect(pg_dsn) as conn:
        top = _run_psql_file(conn, "fragile.sql", pg_schema, as_of=day, top_n=20)
        entity = top[0][0]
        history = _run_psql_file(conn, "entity_history.sql", pg_schema, entity_id=entity)
        plan = conn.execute(
            "EXPLAIN SELECT * FROM joint_embeddings_flat WHERE entity_id = %s", [entity]
        ).fetchall()
        scenario_rows = conn.execute(
            "SELECT count(*) FROM joint_embeddings_flat WHERE kind = 'scenario' "
            "AND fragility IS NULL AND scenario_id IS NOT NULL"
        ).fetchone()
    assert [r[0] for r in top] == expected["entity_id"].to_list()
    assert np.allclose([r[2] for r in top], expected["fragility"].to_numpy(), atol=1e-6)
    assert [r[3] for r in top] == expected["nearest_scenario"].to_list()
    built_history = run_sql(built, "entity_history", {"entity_id": entity})
    assert [r[0] for r in history] == built_history["as_of_date"].to_list()
    assert "entity_idx" in " ".join(str(r[0]) for r in plan)
    assert scenario_rows is not None and scenario_rows[0] > 0


def test_a_missing_table_names_the_command_that_creates_it(
    pg_dsn: str, pg_schema: str, built: Path
) -> None:
    name = f"{pg_schema}.absent"
    res = runner.invoke(app, ["load", "--out", str(built), "--pg-dsn", pg_dsn, "--pg-table", name])
    assert res.exit_code == 1
    assert f"stabfrag db init --pg-table {name}" in res.stderr, res.stderr
