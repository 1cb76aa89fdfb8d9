"""PostgreSQL load rate: stabfrag's slice replace by binary COPY (direct and staged),
beside a server-side `COPY ... FROM 'file' (FORMAT binary)` of the same rows into the
same table, and psycopg `executemany`.

    python bench/pg_bench.py [--rows 1000000] [--repeat 3] [--partitioned] [--dsn postgresql://...]

The table is the SPEC one (bigserial key, index, jsonb, 1,536-byte vector), truncated
before every run. The server-side file is written by the server itself from the loaded
rows, so both methods load identical bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from stabfrag.model.joint import JOINT_V1
from stabfrag.schema import DIM, JOINT_TYPE, VECTOR_TYPE
from stabfrag.sinks.postgres import BATCH_ROWS, init_table, load_frames


def frames(rows: int, per_day: int = 5000, batch: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """Joint rows like a backfill's: 5,000 states per as-of date, `batch` rows per frame
    (as `stabfrag load` streams partitions), made as they are loaded (10 million rows
    would not fit in memory at once)."""
    for lo in range(0, rows, batch):
        yield _batch(lo, min(lo + batch, rows), per_day)


@functools.cache
def _pool(rows: int) -> np.ndarray:
    """Unit vectors the frames take in turn: making fresh ones per frame cost more than
    the load they feed, and the loads read them as they would any vector."""
    v = np.random.default_rng(0).standard_normal((rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _batch(lo: int, hi: int, per_day: int) -> pl.DataFrame:
    v = _pool(hi - lo)
    i = pl.int_range(lo, hi, eager=True)
    day = pl.lit(dt.date(2000, 1, 3)) + pl.duration(days=pl.col("i") // per_day)
    return (
        pl.DataFrame({"i": i})
        .with_columns(day.alias("as_of_date"))
        .select(
            pl.lit(JOINT_TYPE).alias("joint_type"),
            "as_of_date",
            pl.concat_str(
                pl.lit('{"entity_type":"INSTRUMENT","entity_id":"E'),
                (pl.col("i") % per_day).cast(pl.String).str.zfill(5),
                pl.lit('.US","region":"US","source":"stab+scenarios","stab_window":'),
                pl.lit('{"start_date":"1999-01-04","end_date":"'),
                pl.col("as_of_date").cast(pl.String),
                pl.lit('"}}'),
            ).alias("entity_scope"),
            pl.lit(JOINT_V1).alias("model_id"),
            pl.Series("vector", v, dtype=VECTOR_TYPE),
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--executemany-rows", type=int, default=100_000)
    ap.add_argument(
        "--default-only",
        action="store_true",
        help="Measure only the default load beside the server COPY (for 10M rows).",
    )
    ap.add_argument(
        "--partitioned",
        action="store_true",
        help="Into a table made by db init --partitioned (a partition per year).",
    )
    ap.add_argument(
        "--dsn",
        default=os.environ.get("STABFRAG_TEST_DSN", "postgresql://root@127.0.0.1:5432/test"),
    )
    args = ap.parse_args()
    schema = f"sf_bench_{uuid.uuid4().hex[:8]}"
    path = Path(tempfile.gettempdir()) / f"{schema}.bin"  # the server's COPY file
    table = f"{schema}.joint_embeddings"
    ident = sql.Identifier(schema, "joint_embeddings")
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        init_table(args.dsn, table, partitioned=args.partitioned)

        def truncate() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(ident))
                conn.execute("CHECKPOINT")

        # The frames are made while they load (bounded memory): time making them alone,
        # and subtract it from each load.
        t0 = time.perf_counter()
        for _ in frames(args.rows):
            pass
        making = time.perf_counter() - t0
        ours, staged = [], []
        for _ in range(args.repeat):
            truncate()
            t0 = time.perf_counter()
            load_frames(args.dsn, table, frames(args.rows))
            ours.append(time.perf_counter() - t0 - making)
            if args.default_only:
                continue
            truncate()
            t0 = time.perf_counter()
            load_frames(args.dsn, table, frames(args.rows), staging=True)
            staged.append(time.perf_counter() - t0 - making)
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "COPY (SELECT joint_type, as_of_date, entity_scope, model_id, vector FROM {} "
                    "ORDER BY joint_id) TO {} (FORMAT binary)"
                ).format(ident, sql.Literal(str(path)))
            )
        server = []
        for _ in range(args.repeat):
            truncate()
            t0 = time.perf_counter()
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL(
                        "COPY {} (joint_type, as_of_date, entity_scope, model_id, vector) FROM {} "
                        "(FORMAT binary)"
                    ).format(ident, sql.Literal(str(path)))
                )
            server.append(time.perf_counter() - t0)
        truncate()
        if args.default_only:
            return _report(args, server, ours, [], None, making)
        few = next(frames(args.executemany_rows, batch=args.executemany_rows))
        rows = [
            (r[0], r[1], r[2], r[3], np.asarray(r[4], dtype="<f4").tobytes())
            for r in few.select(
                "joint_type", "as_of_date", "entity_scope", "model_id", "vector"
            ).iter_rows()
        ]
        t0 = time.perf_counter()
        with psycopg.connect(args.dsn) as conn, conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (joint_type, as_of_date, entity_scope, model_id, vector) "
                    "VALUES (%s, %s, %s::jsonb, %s, %s)"
                ).format(ident),
                rows,
            )
        many = time.perf_counter() - t0
        _report(args, server, ours, staged, many, making)
    finally:
        path.unlink(missing_ok=True)  # 1.8 GB a million rows
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _report(
    args: argparse.Namespace,
    server: list[float],
    ours: list[float],
    staged: list[float],
    many: float | None,
    making: float,
) -> None:
    n = args.rows
    rate_server = n / statistics.median(server)
    print(f"{n:,} rows into the SPEC table (bigserial, index, jsonb, 1,536-byte vector)")
    print(f"{'method':44} {'median s':>9} {'rows/s':>10} {'vs server':>10}")
    print(
        f"{'server-side COPY FROM file (FORMAT binary)':44} {statistics.median(server):9.2f} "
        f"{rate_server:10,.0f} {1.0:10.2f}   runs " + ", ".join(f"{t:.2f}" for t in server)
    )
    print(f"(making the frames, {making:.1f} s, is subtracted from each stabfrag load)")
    for label, runs in (
        ("stabfrag: delete slice + binary COPY", ours),
        ("stabfrag --pg-staging: temp table + insert", staged),
    ):
        if not runs:
            continue
        rate = n / statistics.median(runs)
        print(
            f"{label:44} {statistics.median(runs):9.2f} {rate:10,.0f} "
            f"{rate / rate_server:10.2f}   runs " + ", ".join(f"{t:.2f}" for t in runs)
        )
    if many is None:
        return
    m = args.executemany_rows
    print(
        f"{'psycopg executemany (' + format(m, ',') + ' rows)':44} {many:9.2f} "
        f"{m / many:10,.0f} {m / many / rate_server:10.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
