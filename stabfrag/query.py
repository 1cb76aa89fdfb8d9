"""DuckDB similarity queries: the SQL files of sql/duckdb, run against stabfrag.duckdb."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from stabfrag.sinks.duckdb import DB_NAME


class QueryError(Exception):
    """A query that cannot run: unknown entity or date, missing output. One line."""


def sql_dir() -> Path:
    """sql/duckdb of the source tree, or the copy shipped inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "sql" / "duckdb", here / "sql"):
        if candidate.is_dir():
            return candidate
    raise QueryError("the SQL query files are missing from this installation")


def connect(out: Path) -> duckdb.DuckDBPyConnection:
    db = out / DB_NAME
    if not db.exists():
        raise QueryError(f"{out}: no {DB_NAME}; run stabfrag build first")
    return duckdb.connect(str(db), read_only=True)


def run_sql(out: Path, name: str, params: dict[str, Any]) -> pl.DataFrame:
    """Set each parameter as a DuckDB variable, then run sql/duckdb/NAME.sql."""
    text = (sql_dir() / f"{name}.sql").read_text()
    con = connect(out)
    try:
        for key, value in params.items():  # a few named parameters
            con.execute(f"SET VARIABLE {key} = ?", [value]).fetchall()
        result = pl.from_arrow(con.sql(text).to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result
    finally:
        con.close()
