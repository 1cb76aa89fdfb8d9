"""Top-10 nearest among 1,000,000 joint vectors: the DuckDB query beside numpy brute force.

    python bench/query_bench.py [--rows 1000000] [--repeat 5]

The vectors are written as a Parquet partition like a backfill's, and the DuckDB side
runs the cosine top-k the SQL files use (array_cosine_similarity over FLOAT[384]).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from stabfrag.schema import DIM, VECTOR_TYPE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    v = rng.standard_normal((args.rows, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[12345]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.parquet"
        pl.DataFrame(
            {"id": np.arange(args.rows), "vector": pl.Series(v, dtype=VECTOR_TYPE)}
        ).write_parquet(path)
        con = duckdb.connect()
        con.execute(
            f"CREATE VIEW vecs AS SELECT id, vector::FLOAT[{DIM}] AS vector "
            f"FROM read_parquet('{path}')"
        )
        con.execute("CREATE TABLE mem AS SELECT * FROM vecs")
        sql = (
            f"SELECT id, array_cosine_similarity(vector, ?::FLOAT[{DIM}]) AS s FROM {{}} "
            "ORDER BY s DESC LIMIT 10"
        )
        res = {}
        for name, src in (("duckdb, Parquet view", "vecs"), ("duckdb, in-memory table", "mem")):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ids = [r[0] for r in con.execute(sql.format(src), [q.tolist()]).fetchall()]
                times.append(time.perf_counter() - t0)
            res[name] = (statistics.median(times), ids)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sims = v @ q
            top = np.argpartition(-sims, 10)[:10]
            ids = top[np.argsort(-sims[top])].tolist()
            times.append(time.perf_counter() - t0)
        base = statistics.median(times)
        res["numpy brute force (in memory)"] = (base, ids)
    ref = res["numpy brute force (in memory)"][1]
    print(f"top-10 by cosine among {args.rows:,} x {DIM} vectors, median of {args.repeat}")
    print(f"{'method':34} {'median s':>9} {'x numpy':>8}  same top-10")
    for name, (t, ids) in res.items():
        print(f"{name:34} {t:9.3f} {t / base:8.1f}  {ids == ref}")


if __name__ == "__main__":
    sys.exit(main())
