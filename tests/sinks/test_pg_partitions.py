"""A joint_embeddings table partitioned by year: loads make the partitions they need and
replace only what they bring, a date-range query reads only its years, and prune drops
old years whole."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions

runner = CliRunner()


def _build(market_dir: Path, out: Path) -> None:
    args = ["backfill", "--start", "2023-10-01", "--end", "2024-02-29", "--freq", "month"]
    res = runner.invoke(
        app, [*args, "--prices", str(market_dir / "prices.parquet"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output


def _loaded(market_dir: Path, tmp_path: Path, dsn: str, schema: str) -> tuple[Path, list[str]]:
    """A month-end build over two years, loaded into a table made with --partitioned."""
    out = tmp_path / "out"
    _build(market_dir, out)
    table = ["--pg-dsn", dsn, "--pg-table", f"{schema}.joint_embeddings"]
    res = runner.invoke(app, ["db", "init", "--partitioned", *table])
    assert res.exit_code == 0 and "partitioned by year" in res.stdout, res.output
    assert runner.invoke(app, ["load", "--out", str(out), *table]).exit_code == 0
    return out, table


def _rows(dsn: str, schema: str) -> list[tuple[str, int]]:
    query = sql.SQL(
        "SELECT tableoid::regclass::text, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    ).format(sql.Identifier(schema, "joint_embeddings"))
    with psycopg.connect(dsn) as conn:
        return [(str(r[0]), int(r[1])) for r in conn.execute(query).fetchall()]


def test_a_partitioned_table_loads_prunes_and_reads_only_its_years(
    market_dir: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    out, table = _loaded(market_dir, tmp_path, pg_dsn, pg_schema)
    first = _rows(pg_dsn, pg_schema)
    years = [name.rsplit("_y", 1)[1] for name, _ in first]
    assert years == ["2023", "2024"] and all(n > 0 for _, n in first)
    # A reload replaces what it brings: the same rows, no duplicates, same partitions.
    assert runner.invoke(app, ["load", "--out", str(out), *table]).exit_code == 0
    assert _rows(pg_dsn, pg_schema) == first
    # A date-range query reads only its year's partition.
    with psycopg.connect(pg_dsn) as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sql.SQL("EXPLAIN SELECT count(*) FROM {} WHERE as_of_date >= %s").format(
                    sql.Identifier(pg_schema, "joint_embeddings")
                ),
                [dt.date(2024, 1, 1)],
            ).fetchall()
        )
    assert "joint_embeddings_y2024" in plan and "joint_embeddings_y2023" not in plan, plan
    # prune drops the years that end by the date, whole; the year holding it stays.
    res = runner.invoke(app, ["db", "prune", "--before", "2024-01-15", *table, "--json"])
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["partitions_dropped"] == ["joint_embeddings_y2023"]
    assert done["rows_dropped"] == first[0][1]
    assert _rows(pg_dsn, pg_schema) == first[1:]


def test_prune_refuses_a_table_that_is_not_partitioned(pg_dsn: str, pg_schema: str) -> None:
    table = ["--pg-dsn", pg_dsn, "--pg-table", f"{pg_schema}.joint_embeddings"]
    assert runner.invoke(app, ["db", "init", *table]).exit_code == 0
    res = runner.invoke(app, ["db", "prune", "--before", "2024-01-01", *table])
    assert res.exit_code == 1 and "not partitioned" in res.stderr, res.output
    res = runner.invoke(app, ["db", "init", "--partitioned", *table])
    assert res.exit_code == 1 and "not partitioned" in res.stderr


def _activity(dsn: str, schema: str) -> dict[str, tuple[int, ...]]:
    """Each partition's reads and writes so far, as the statistics collector counts them."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT relname, seq_scan, coalesce(idx_scan, 0), n_tup_ins, n_tup_del "
            "FROM pg_stat_user_tables WHERE schemaname = %s",
            [schema],
        ).fetchall()
    return {r[0]: tuple(int(v) for v in r[1:]) for r in rows}


def _settled(dsn: str, schema: str, done: Callable[[dict[str, tuple[int, ...]]], bool]) -> dict:
    """The counts once `done` holds: a closed session's counts reach the collector soon
    after it ends, not at once."""
    deadline = time.monotonic() + 30
    while not done(counts := _activity(dsn, schema)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done(counts), counts
    return counts


def test_reloading_a_date_touches_only_its_year(
    market_dir: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    out, table = _loaded(market_dir, tmp_path, pg_dsn, pg_schema)
    day = max(partitions(out))  # a date of 2024
    year = f"joint_embeddings_y{day.year}"
    held = {name.split(".")[-1]: n for name, n in _rows(pg_dsn, pg_schema)}
    before = _settled(pg_dsn, pg_schema, lambda c: all(c[k][2] == n for k, n in held.items()))
    with psycopg.connect(pg_dsn) as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE as_of_date = %s").format(
            sql.Identifier(pg_schema, "joint_embeddings")
        )
        rows = conn.execute(query, [day]).fetchone()[0]
    for extra in ([], ["--replace-slice"]):
        res = runner.invoke(app, ["load", "--out", str(out), "--as-of", str(day), *extra, *table])
        assert res.exit_code == 0, res.output
    # Both reloads deleted and inserted the date's rows: 2 x rows each way, in its year.
    after = _settled(
        pg_dsn,
        pg_schema,
        lambda c: c[year][2:] == (before[year][2] + 2 * rows, before[year][3] + 2 * rows),
    )
    others = {name for name in after if name != year and name.startswith("joint_embeddings_y")}
    assert others and all(after[name] == before[name] for name in others)  # not even read
