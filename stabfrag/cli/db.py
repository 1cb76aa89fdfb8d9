"""`stabfrag db init` and `stabfrag load`: the PostgreSQL table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import (
    App,
    JsonOpt,
    OutOpt,
    PgDsnOpt,
    PgReplaceOpt,
    PgStagingOpt,
    PgTableOpt,
    app,
    fail,
    parse_date,
)

db_app = App(no_args_is_help=True, help="The PostgreSQL table.")


@db_app.command("init")
def db_init(
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    print_sql: Annotated[bool, typer.Option("--print", help="Print the DDL, run nothing.")] = False,
    partitioned: Annotated[
        bool,
        typer.Option(
            "--partitioned",
            help="Partition the table by year of as_of_date: loads make the partitions they "
            "need, db prune drops old years whole.",
        ),
    ] = False,
    vector_column: Annotated[
        bool,
        typer.Option(
            "--vector-column",
            help="Where the server has pgvector: an embedding column (halfvec(384)) that "
            "loads fill, without its index (for a bulk load; --vector-index after it).",
        ),
    ] = False,
    vector_index: Annotated[
        bool,
        typer.Option(
            "--vector-index",
            help="Where the server has pgvector: the embedding column and an HNSW index on "
            "it for sql/postgres/analogs.sql. Without the extension: one line, and the table "
            "as without the option.",
        ),
    ] = False,
) -> None:
    """Create the joint_embeddings table and index (idempotent)."""
    from stabfrag.sinks import postgres

    vector = "index" if vector_index else "column" if vector_column else None
    if print_sql:
        for stmt in postgres.ddl_statements(pg_table, partitioned=partitioned):
            typer.echo(stmt.as_string(None) + ";")
        for stmt in postgres.vector_statements(pg_table, vector) if vector else []:
            typer.echo(stmt.as_string(None) + ";")
        return
    if not pg_dsn:
        fail("--pg-dsn (or STABFRAG_PG_DSN) is required")
        return
    lines = postgres.init_table(pg_dsn, pg_table, partitioned=partitioned, vector=vector)
    for line in lines:
        typer.echo(f"{pg_table}: {line}")


@db_app.command("prune")
def db_prune(
    before: Annotated[str, typer.Option("--before", help="Drop the years that end by this date.")],
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    as_json: JsonOpt = False,
) -> None:
    """Drop the yearly partitions of a partitioned table that end on or before --before
    (retention without a long DELETE); the year holding --before stays whole."""
    from stabfrag.engine.summary import emit
    from stabfrag.sinks import postgres

    day = parse_date(before, "--before")
    if not pg_dsn:
        fail("--pg-dsn (or STABFRAG_PG_DSN) is required")
        return
    emit(postgres.prune_table(pg_dsn, pg_table, day), as_json=as_json)


@app.command()
def load(
    out: OutOpt = Path("stabfrag-out"),
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    as_of: Annotated[str | None, typer.Option("--as-of", help="One as-of date.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First as-of date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last as-of date.")] = None,
    pg_staging: PgStagingOpt = False,
    pg_replace_slice: PgReplaceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load built Parquet partitions into PostgreSQL: one transaction, idempotent; it
    replaces the entities and scenarios it brings (the whole slice with --replace-slice)."""
    from stabfrag.engine.summary import emit
    from stabfrag.sinks.postgres import load_partitions

    if not pg_dsn:
        fail("--pg-dsn (or STABFRAG_PG_DSN) is required")
        return
    if as_of and (start or end):
        fail("give --as-of or --start/--end, not both")
    first_text, last_text = as_of or start, as_of or end
    first = parse_date(first_text, "--start") if first_text else None
    last = parse_date(last_text, "--end") if last_text else None
    result = load_partitions(
        out,
        pg_dsn,
        pg_table,
        first=first,
        last=last,
        staging=pg_staging,
        replace_slice=pg_replace_slice,
    )
    emit(result, as_json=as_json)
