"""One date reloaded into a large partitioned joint_embeddings table, beside the same date
loaded into an empty one.

    python bench/pg_reload_bench.py [--rows 100000000] [--per-day 20000] [--repeat 3]

The table is made by `db init --partitioned` (a partition per year). `--rows` rows are
made on the server, `--per-day` entity states per business day from 2001-01-02: the
SPEC columns and an entity_scope of the bench's shape (so a reload replaces them by key).
Their vectors all repeat one unit vector, and their entity_scope carries a 600-character
filler: the row then passes PostgreSQL's 2 kB toast threshold, and the filled partitions
compress both (toast_tuple_target = 128), so 100 million rows take about 20 GB of disk
rather than 170.
The rows a load brings are ordinary 1,536-byte vectors. A filled year is made as a
table of its own and attached: PostgreSQL builds its indexes once.

Figures: loading one date's rows into the empty table; the same rows replacing that
date of the full table (by key, and with --replace-slice), and a new date in a full year.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import numpy as np
import polars as pl
import psycopg
from pg_bench import _batch
from psycopg import sql

from stabfrag.model.joint import JOINT_V1
from stabfrag.schema import DIM, JOINT_TYPE
from stabfrag.sinks.pg_partitions import partition_ident
from stabfrag.sinks.postgres import init_table, load_frames

START = dt.date(2001, 1, 2)
SCOPE = (
    '\'{"entity_type":"INSTRUMENT","entity_id":"E\' || lpad(e::text, 5, \'0\') || '
    '\'.US","region":"US","source":"stab+scenarios","stab_window":'
    '{"start_date":"1999-01-04","end_date":"\' || d::text || \'"},"filler":"\' || '
    "repeat('x', 600) || '\"}'"
)


def business_days(count: int) -> list[dt.date]:
    """`count` weekdays from START."""
    days = np.busday_offset(np.datetime64(START), np.arange(count), roll="forward")
    return [d.item() for d in days]


def day_frame(day: dt.date, per_day: int) -> pl.DataFrame:
    """The bench's rows (pg_bench's frames) of one date."""
    return _batch(0, per_day, per_day).with_columns(pl.lit(day).alias("as_of_date"))


def fill_year(
    conn: psycopg.Connection, table: list[str], year: int, days: list[dt.date], per_day: int
) -> float:
    """Make the year's partition as a table of its own, fill it and attach it."""
    parent, part = sql.Identifier(*table), partition_ident(table, year)
    vector = np.full(DIM, DIM**-0.5, dtype="<f4").tobytes()
    t0 = time.perf_counter()
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TABLE {p} (LIKE {t} INCLUDING DEFAULTS) WITH (toast_tuple_target = 128)"
            ).format(p=part, t=parent)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {p} (joint_type, as_of_date, entity_scope, model_id, vector) "
                "SELECT %s, d, ("
                + SCOPE.replace("{", "{{").replace("}", "}}")
                + ")::jsonb, %s, %s "
                "FROM unnest(%s::date[]) AS d CROSS JOIN generate_series(0, %s) AS e"
            ).format(p=part),
            [JOINT_TYPE, JOINT_V1, vector, days, per_day - 1],
        )
        conn.execute(
            sql.SQL("ALTER TABLE {t} ATTACH PARTITION {p} FOR VALUES FROM ({a}) TO ({b})").format(
                t=parent,
                p=part,
                a=sql.Literal(dt.date(year, 1, 1)),
                b=sql.Literal(dt.date(year + 1, 1, 1)),
            )
        )
    return time.perf_counter() - t0


def timed(runs: int, before: Callable[[], None], load: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        load()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--per-day", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--dsn",
        default=os.environ.get("STABFRAG_TEST_DSN", "postgresql://root@127.0.0.1:5432/test"),
    )
    args = ap.parse_args()
    schema = f"sf_reload_{uuid.uuid4().hex[:8]}"
    parts, name = [schema, "joint_embeddings"], f"{schema}.joint_embeddings"
    ident = sql.Identifier(*parts)
    days = business_days(args.rows // args.per_day)
    target = days[len(days) // 2]  # a date in the middle of a full year
    fresh = target + dt.timedelta(days=5 - target.weekday())  # its Saturday: not filled
    frame = day_frame(target, args.per_day)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        init_table(args.dsn, name, partitioned=True)

        def truncate() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {}").format(ident))
                conn.execute("CHECKPOINT")

        def checkpoint() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute("CHECKPOINT")

        def load(rows: pl.DataFrame = frame, **options: bool) -> Callable[[], None]:
            return lambda: load_frames(args.dsn, name, [rows], **options)

        empty = timed(args.repeat, truncate, load())
        truncate()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(partition_ident(parts, target.year))
            )
            filled = 0.0
            for year in sorted({d.year for d in days}):
                chunk = [d for d in days if d.year == year]
                took = fill_year(conn, parts, year, chunk, args.per_day)
                filled += took
                print(
                    f"filled {year}: {len(chunk) * args.per_day:,} rows in {took:.0f} s", flush=True
                )
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = %s::regclass",
                [ident.as_string(conn)],
            ).fetchone()[0]
        full = timed(args.repeat, checkpoint, load())
        whole = timed(args.repeat, checkpoint, load(replace_slice=True))
        new_day = day_frame(fresh, args.per_day)
        first = timed(1, checkpoint, load(new_day))
        report(args, target, fresh, filled, int(size), empty, full, whole, first)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def report(
    args: argparse.Namespace,
    target: dt.date,
    fresh: dt.date,
    filled: float,
    size: int,
    empty: list[float],
    full: list[float],
    whole: list[float],
    first: list[float],
) -> None:
    n = args.rows
    print(f"table: {n:,} rows, {size / 1e9:.1f} GB with indexes, made in {filled:.0f} s")
    print(f"one date = {args.per_day:,} rows; reloaded {target}, new date {fresh}")
    base = statistics.median(empty)
    for label, runs in (
        ("into the empty table", empty),
        (f"replacing {target} of the full table, by key", full),
        (f"replacing {target}, --replace-slice", whole),
        (f"a new date ({fresh}) of a full year", first),
    ):
        med = statistics.median(runs)
        print(
            f"{label:52} {med:7.2f} s  x empty {med / base:5.2f}   runs "
            + ", ".join(f"{t:.2f}" for t in runs)
        )


if __name__ == "__main__":
    sys.exit(main())
