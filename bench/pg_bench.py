"""PostgreSQL load rate: stabfrag's slice replace by binary COPY (direct and staged),
beside a server-side `COPY ... FROM 'file' (FORMAT binary)` of the same rows into the
same table, and psycopg `executemany`.

    python bench/pg_bench.py [--rows 1000000] [--repeat 3] [--dsn postgresql://...]

The table is the SPEC one (bigserial key, index, jsonb, 1,536-byte vector), truncated
before every run. The server-side file is written by the server itself from the loaded
rows, so both methods load identical bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from stabfrag.model.joint import JOINT_V1
from stabfrag.schema import DIM, JOINT_TYPE, VECTOR_TYPE
from stabfrag.sinks.postgres import init_table, load_frames


def frames(rows: int, per_day: int = 5000) -> list[pl.DataFrame]:
    """Joint rows like a backfill's: 5,000 states per as-of date."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal((rows, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    days = [dt.date(2000, 1, 3) + dt.timedelta(days=i // per_day) for i in range(rows)]
    scope = [
        json.dumps(
            {
                "entity_type": "INSTRUMENT",
                "entity_id": f"E{i % per_day:05d}.US",
                "region": "US",
                "source": "stab+scenarios",
                "stab_window": {"start_date": "1999-01-04", "end_date": str(days[i])},
            },
            separators=(",", ":"),
        )
        for i in range(rows)  # bench data set-up, not the measured path
    ]
    frame = pl.DataFrame(
        {
            "joint_type": JOINT_TYPE,
            "as_of_date": days,
            "entity_scope": scope,
            "model_id": JOINT_V1,
            "vector": pl.Series(v, dtype=VECTOR_TYPE),
        }
    )
    return [frame]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--executemany-rows", type=int, default=100_000)
    ap.add_argument(
        "--dsn",
        default=os.environ.get("STABFRAG_TEST_DSN", "postgresql://root@127.0.0.1:5432/test"),
    )
    args = ap.parse_args()
    schema = f"sf_bench_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.joint_embeddings"
    ident = sql.Identifier(schema, "joint_embeddings")
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        init_table(args.dsn, table)
        data = frames(args.rows)

        def truncate() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(ident))
                conn.execute("CHECKPOINT")

        ours, staged = [], []
        for _ in range(args.repeat):
            truncate()
            t0 = time.perf_counter()
            load_frames(args.dsn, table, data)
            ours.append(time.perf_counter() - t0)
            truncate()
            t0 = time.perf_counter()
            load_frames(args.dsn, table, data, staging=True)
            staged.append(time.perf_counter() - t0)
        path = str(Path(tempfile.gettempdir()) / f"{schema}.bin")
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "COPY (SELECT joint_type, as_of_date, entity_scope, model_id, vector FROM {} "
                    "ORDER BY joint_id) TO {} (FORMAT binary)"
                ).format(ident, sql.Literal(path))
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
                    ).format(ident, sql.Literal(path))
                )
            server.append(time.perf_counter() - t0)
        truncate()
        few = data[0].head(args.executemany_rows)
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
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    n = args.rows
    rate_server = n / statistics.median(server)
    print(f"{n:,} rows into the SPEC table (bigserial, index, jsonb, 1,536-byte vector)")
    print(f"{'method':44} {'median s':>9} {'rows/s':>10} {'vs server':>10}")
    print(
        f"{'server-side COPY FROM file (FORMAT binary)':44} {statistics.median(server):9.2f} "
        f"{rate_server:10,.0f} {1.0:10.2f}   runs " + ", ".join(f"{t:.2f}" for t in server)
    )
    for label, runs in (
        ("stabfrag: delete slice + binary COPY", ours),
        ("stabfrag --pg-staging: temp table + insert", staged),
    ):
        rate = n / statistics.median(runs)
        print(
            f"{label:44} {statistics.median(runs):9.2f} {rate:10,.0f} "
            f"{rate / rate_server:10.2f}   runs " + ", ".join(f"{t:.2f}" for t in runs)
        )
    m = args.executemany_rows
    print(
        f"{'psycopg executemany (' + format(m, ',') + ' rows)':44} {many:9.2f} "
        f"{m / many:10,.0f} {m / many / rate_server:10.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
