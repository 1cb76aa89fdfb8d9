"""stabfrag.duckdb: views over the Parquet dataset, vector typed as FLOAT[384]."""

from __future__ import annotations

from pathlib import Path

import duckdb

from stabfrag.atomic import write_atomic
from stabfrag.schema import DIM

DB_NAME = "stabfrag.duckdb"
TABLES = ("joint_embeddings", "features", "rejects", "scenarios")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(out: Path) -> list[str]:
    """CREATE VIEW statements over the dataset at `out` (absolute paths: any cwd works)."""
    root = out.resolve()
    stmts = []
    for table in TABLES:
        # Date-named folders only: a folder copied aside (as_of_date=....bak) is no partition.
        glob = _quote(str(root / table / "as_of_date=????-??-??" / "part-0.parquet"))
        # as_of_date is a column of every file, so the Hive key is not added again.
        source = f"read_parquet({glob}, hive_partitioning = false, union_by_name = false)"
        if table == "joint_embeddings":
            select = f"SELECT * REPLACE (vector::FLOAT[{DIM}] AS vector) FROM {source}"
        else:
            select = f"SELECT * FROM {source}"
        stmts.append(f"CREATE OR REPLACE VIEW {table} AS {select}")
    return stmts


def write_views(out: Path) -> Path:
    """(Re)create stabfrag.duckdb with the views; built aside and renamed into place."""
    present = [t for t in TABLES if any((out / t).glob("as_of_date=????-??-??/part-0.parquet"))]

    def build(tmp: Path) -> None:
        con = duckdb.connect(str(tmp))
        try:
            for table, stmt in zip(TABLES, view_sql(out), strict=True):
                if table in present:
                    con.execute(stmt)
            con.execute("CHECKPOINT")
        finally:
            con.close()

    return write_atomic(out / DB_NAME, build)
