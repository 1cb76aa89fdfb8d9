"""PostgreSQL partitions of a joint_embeddings table made with `db init --partitioned`:
one per calendar year of as_of_date, named TABLE_yYYYY in the table's schema. A load
creates the partitions it needs (in its own transaction); `db prune --before DATE` drops
the partitions that end on or before DATE, whole."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from psycopg import sql

from stabfrag.errors import ServiceError

BOUNDS = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")


def is_partitioned(cur: Any, regclass: str) -> bool:
    """Whether the table (its quoted name) is partitioned."""
    cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [regclass])
    row = cur.fetchone()
    return row is not None and row[0] == "p"


def partition_ident(parts: list[str], year: int) -> sql.Identifier:
    """The partition of `year` of the table whose unquoted parts are `parts`."""
    *schema, base = parts
    name = f"{base}_y{year}"
    if len(name) > 63:
        raise ServiceError(f"{base}: too long a name for its partitions ({name})")
    return sql.Identifier(*schema, name)


def ensure_partitions(
    cur: Any, table: sql.Identifier, parts: list[str], days: Iterable[dt.date]
) -> None:
    """Create the yearly partitions `days` fall in, where missing."""
    for year in sorted({d.year for d in days}):
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {p} PARTITION OF {t} FOR VALUES FROM ({a}) TO ({b})"
            ).format(
                p=partition_ident(parts, year),
                t=table,
                a=sql.Literal(dt.date(year, 1, 1)),
                b=sql.Literal(dt.date(year + 1, 1, 1)),
            )
        )


def partitions_of(cur: Any, regclass: str) -> list[tuple[str, str, dt.date, dt.date]]:
    """(schema, name, first day, day after the last) of every partition, oldest first."""
    cur.execute(
        "SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.inhparent = to_regclass(%s)",
        [regclass],
    )
    found = []
    for schema, name, bound in cur.fetchall():
        match = BOUNDS.search(bound or "")
        if match:  # (a DEFAULT partition has no range: never pruned)
            lo, hi = (dt.date.fromisoformat(g) for g in match.groups())
            found.append((schema, name, lo, hi))
    return sorted(found, key=lambda p: p[2])


def prune(cur: Any, regclass: str, before: dt.date) -> dict[str, Any]:
    """Drop the partitions that end on or before `before` (every day they hold is older);
    the one holding `before` stays whole."""
    if not is_partitioned(cur, regclass):
        raise ServiceError(
            f"{regclass} is not partitioned: prune drops partitions (make the table with "
            "stabfrag db init --partitioned)"
        )
    dropped, rows = [], 0
    for schema, name, _, hi in partitions_of(cur, regclass):
        if hi > before:
            continue
        ident = sql.Identifier(schema, name)
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
        rows += int(cur.fetchone()[0])
        cur.execute(sql.SQL("DROP TABLE {}").format(ident))
        dropped.append(name)
    return {"partitions_dropped": dropped, "rows_dropped": rows, "before": before.isoformat()}
