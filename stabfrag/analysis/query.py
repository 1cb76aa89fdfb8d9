"""DuckDB similarity queries: the SQL files of sql/duckdb, run against stabfrag.duckdb."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from stabfrag.config import packaged
from stabfrag.errors import QueryError, first_line
from stabfrag.sinks.dataset import partitions
from stabfrag.sinks.duckdb import DB_NAME, search_path


def sql_dir() -> Path:
    """sql/duckdb, shipped inside the package."""
    folder = packaged("sql", "duckdb")
    if not folder.is_dir():
        raise QueryError("the SQL query files are missing from this installation")
    return folder


def connect(out: Path) -> duckdb.DuckDBPyConnection:
    db = out / DB_NAME
    if not db.exists():
        raise QueryError(f"{out}: no {DB_NAME}; run stabfrag build first")
    con = duckdb.connect(str(db), read_only=True)
    search_path(con, out)
    return con


def run_sql(out: Path, name: str, params: dict[str, Any]) -> pl.DataFrame:
    """Set each parameter as a DuckDB variable, then run sql/duckdb/NAME.sql."""
    return run_text(out, (sql_dir() / f"{name}.sql").read_text(), params)


# What SQL over a build may be: queries. A read-only connection already refuses writes to
# the database, but COPY ... TO and EXPORT write files, INSTALL reaches the network and
# LOAD and ATTACH bring in code or other databases.
QUERIES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def check_queries(text: str) -> None:
    """Refuse any statement that is not a query; SQL that does not parse is left to the
    run, whose error names the problem."""
    kinds: list[duckdb.StatementType | None]
    try:
        kinds = [s.type for s in duckdb.extract_statements(text)]
    except duckdb.Error:
        return
    except ValueError:  # a statement type this DuckDB's Python API cannot even name
        kinds = [None]
    for kind in kinds:
        if kind not in QUERIES:
            name = "this" if kind is None else kind.name
            raise QueryError(
                f"SQL over a build is read-only and offline: {name} statements are refused "
                "(SELECT, WITH, DESCRIBE, SHOW and EXPLAIN run)"
            )


def run_text(out: Path, text: str, params: dict[str, Any]) -> pl.DataFrame:
    """Run SQL over the output's views (read only), each parameter a DuckDB variable that
    the SQL reads with getvariable('name'). A DuckDB error is one QueryError line."""
    check_queries(text)
    con = connect(out)
    try:
        for key, value in params.items():
            if not key.isidentifier():
                raise QueryError(f"--param {key}: a name is letters, digits and _")
            con.execute(f"SET VARIABLE {key} = ?", [value]).fetchall()
        relation = con.sql(text)
        if relation is None:
            raise QueryError("the SQL returns no rows (a query must be a SELECT or similar)")
        result = pl.from_arrow(relation.to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result
    except duckdb.Error as exc:
        message = first_line(exc)
        if ".parquet" in message:  # a file of the build is damaged or gone
            message += f"; stabfrag verify --out {out} lists such files, backfill --resume rebuilds"
        raise QueryError(message) from None
    finally:
        con.close()


def sql_text(query: str) -> str:
    """The SQL a `stabfrag sql` argument names: a .sql file, a shipped query by name
    (fragile, analogs, ...), or the SQL itself."""
    path = Path(query)
    if query.endswith(".sql"):
        if not path.is_file():
            raise QueryError(f"{query}: no such SQL file")
        return path.read_text()
    shipped = sql_dir() / f"{query}.sql"
    if query.isidentifier() and shipped.is_file():
        return shipped.read_text()
    return query


def parse_param(text: str) -> tuple[str, Any]:
    """'name=value' -> (name, value): an integer, a number, a date (YYYY-MM-DD) or text."""
    import datetime as dt

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise QueryError(f"--param '{text}' is not NAME=VALUE")
    for parse in (int, float, dt.date.fromisoformat):
        try:
            return name.strip(), parse(value)
        except ValueError:
            continue
    return name.strip(), value


def _one(con: duckdb.DuckDBPyConnection, text: str, params: list[Any]) -> list[tuple[Any, ...]]:
    return con.execute(text, params).fetchall()


def check_date(out: Path, as_of: Any) -> None:
    """Refuse a date without a partition, naming the nearest dates that have one."""
    connect(out).close()  # (the same one line as a query when there is no build)
    dates = partitions(out)  # the folders, not the files: a damaged file stops nothing here
    if as_of in dates:
        return
    near = sorted(dates, key=lambda d: (abs((d - as_of).days), d))[:3]
    hint = ", ".join(str(d) for d in sorted(near)) or "none built"
    raise QueryError(f"no partition for {as_of}; nearest as-of dates: {hint}")


def check_entity(out: Path, entity_id: str, as_of: Any | None = None) -> None:
    """Refuse an entity without a state (on that date), naming close entity ids."""
    import difflib

    con = connect(out)
    try:
        where = "kind = 'entity'" + (" AND as_of_date = ?" if as_of is not None else "")
        ids = [
            r[0]
            for r in _one(
                con,
                f"SELECT DISTINCT entity_id FROM joint_embeddings WHERE {where}",
                [as_of] if as_of is not None else [],
            )
        ]
    finally:
        con.close()
    if entity_id in ids:
        return
    close = difflib.get_close_matches(entity_id, ids, n=3, cutoff=0.5)
    when = f" on {as_of}" if as_of is not None else ""
    hint = f"; close entity ids: {', '.join(close)}" if close else ""
    raise QueryError(f"no state for entity {entity_id}{when}{hint}")


def check_scenario(out: Path, scenario_id: str) -> None:
    import difflib

    con = connect(out)
    try:
        ids = [
            r[0]
            for r in _one(
                con, "SELECT DISTINCT scenario_id FROM joint_embeddings WHERE kind = 'scenario'", []
            )
        ]
    finally:
        con.close()
    if scenario_id not in ids:
        close = difflib.get_close_matches(scenario_id, ids, n=3, cutoff=0.4)
        hint = f"; close scenario ids: {', '.join(close)}" if close else ""
        raise QueryError(f"no scenario {scenario_id}{hint}")
