"""stabfrag.duckdb: views over the Parquet dataset, vector typed as FLOAT[384]."""

from __future__ import annotations

from pathlib import Path

import duckdb

from stabfrag.atomic import write_atomic
from stabfrag.schema import DIM
from stabfrag.sinks.dataset import PART_GLOB

DB_NAME = "stabfrag.duckdb"
TABLES = ("joint_embeddings", "features", "rejects", "scenarios")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def search_path(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Resolve the views' relative paths against the output folder `out`."""
    con.execute(f"SET file_search_path = {_quote(str(out.resolve()))}")


def view_sql() -> list[str]:
    """CREATE VIEW statements over the dataset, with paths relative to its folder, so an
    output folder can be moved, copied and shared (a client opens it from inside the
    folder, or sets file_search_path to it)."""
    stmts = []
    for table in TABLES:
        # Date-named folders only: a folder copied aside (as_of_date=....bak) is no partition.
        glob = _quote(f"{table}/as_of_date=????-??-??/{PART_GLOB}")
        # as_of_date is a column of every file and the key of its folder: read as the Hive
        # key, a query on some dates opens only their files (a damaged file of another
        # date does not stop it).
        # The scenarios table has gained columns (context_as_of): a folder built over
        # months holds both shapes, read by name. It is a few dozen rows a date, so
        # reading every file's schema costs nothing; the large tables keep one shape.
        by_name = "true" if table == "scenarios" else "false"
        source = f"read_parquet({glob}, hive_partitioning = true, union_by_name = {by_name})"
        if table == "joint_embeddings":
            select = f"SELECT * REPLACE (vector::FLOAT[{DIM}] AS vector) FROM {source}"
        else:
            select = f"SELECT * FROM {source}"
        stmts.append(f"CREATE OR REPLACE VIEW {table} AS {select}")
    return stmts


def write_views(out: Path) -> Path:
    """(Re)create stabfrag.duckdb with the views; built aside and renamed into place."""
    present = [t for t in TABLES if any((out / t).glob(f"as_of_date=????-??-??/{PART_GLOB}"))]

    def build(tmp: Path) -> None:
        con = duckdb.connect(str(tmp))
        try:
            search_path(con, out)
            for table, stmt in zip(TABLES, view_sql(), strict=True):
                if table in present:
                    con.execute(stmt)
            con.execute("CHECKPOINT")
        finally:
            con.close()

    return write_atomic(out / DB_NAME, build)
