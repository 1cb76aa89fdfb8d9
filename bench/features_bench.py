"""All-dates feature panel three ways: stabfrag, pandas groupby().rolling(), DuckDB window SQL.

    python bench/features_bench.py [--entities 5000] [--days 2520] [--subset 300] [--repeat 3]

stabfrag runs on the full panel and, with both baselines, on a subset of entities (the
pandas path features call a Python function per window, too slow for 12.6 million rows);
ratios come from the subset, where all three did the same work. Each engine runs in a
child process of its own so its peak RSS is its own. Results are checked equal on the
subset before any figure is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, median_time, panel, run_child  # noqa: E402

HERE = Path(__file__).resolve().parent


def _subset(prices: Path, entities: int) -> Path:
    import polars as pl

    out = prices.parent / f"subset_{entities}.parquet"
    if not out.exists():
        frame = pl.read_parquet(prices)
        keep = frame["entity_id"].unique().sort().head(entities)
        frame.filter(pl.col("entity_id").is_in(keep.implode())).write_parquet(out)
    return out


def engine(name: str, prices: Path, repeat: int, check: Path | None) -> None:
    """Child process: time one engine, optionally save its output for the equality check."""
    import polars as pl

    frame = pl.read_parquet(prices).sort("entity_id", "date")
    if name == "stabfrag":
        from stabfrag.features.plan import compute_features

        fn = lambda: compute_features(frame)  # noqa: E731
    elif name == "pandas":
        from pandas_features import features

        pdf = frame.to_pandas()
        fn = lambda: features(pdf)  # noqa: E731
    else:
        import duckdb

        con = duckdb.connect()
        con.register("prices", frame.to_arrow())
        sql = (HERE / "duckdb_features.sql").read_text()
        fn = lambda: con.sql(sql).to_arrow_table()  # noqa: E731
    med, times, result = median_time(fn, repeat)
    if check is not None:
        out = (
            result
            if isinstance(result, pl.DataFrame)
            else pl.from_pandas(result)
            if name == "pandas"
            else pl.from_arrow(result)
        )
        assert isinstance(out, pl.DataFrame)
        out.write_parquet(check)
    emit({"engine": name, "rows": frame.height, "median_s": med, "runs_s": times})


def _check_equal(paths: dict[str, Path]) -> str:
    import numpy as np
    import polars as pl

    from stabfrag.features.registry import FEATURE_NAMES

    ref = pl.read_parquet(paths["stabfrag"]).sort("entity_id", "date")
    lines = []
    for name in ("pandas", "duckdb"):
        other = pl.read_parquet(paths[name]).with_columns(pl.col("date").cast(pl.Date))
        other = other.sort("entity_id", "date")
        worst = 0.0
        for f in FEATURE_NAMES:
            a = ref[f].cast(pl.Float64).fill_null(np.nan).to_numpy()
            b = other[f].cast(pl.Float64).fill_null(np.nan).fill_nan(np.nan).to_numpy()
            b = np.where(np.isfinite(b), b, np.nan)
            assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name} {f}: null pattern differs"
            ok = ~np.isnan(a)
            rel = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(a[ok]), 1e-12)
            worst = max(worst, float(rel.max()) if len(rel) else 0.0)
            np.testing.assert_allclose(a[ok], b[ok], rtol=1e-7, atol=1e-10, err_msg=f"{name} {f}")
        lines.append(
            f"{name}: equal to stabfrag on all {len(FEATURE_NAMES)} features "
            f"(worst relative difference {worst:.1e})"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=5000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--subset", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine")
    ap.add_argument("--prices", type=Path)
    ap.add_argument("--check", type=Path)
    args = ap.parse_args()
    if args.engine:
        engine(args.engine, args.prices, args.repeat, args.check)
        return

    full = panel(args.entities, args.days) / "prices.parquet"
    sub = _subset(full, args.subset)
    me = str(Path(__file__).resolve())
    checks = {n: full.parent / f"check_{n}.parquet" for n in ("stabfrag", "pandas", "duckdb")}
    results = {}
    for name in ("stabfrag", "pandas", "duckdb"):
        reps = args.repeat if name != "pandas" else 1
        res, rss = run_child(
            [
                me,
                "--engine",
                name,
                "--prices",
                str(sub),
                "--repeat",
                str(reps),
                "--check",
                str(checks[name]),
            ]
        )
        results[name] = (res, rss)
    print(_check_equal(checks))
    full_res, full_rss = run_child(
        [me, "--engine", "stabfrag", "--prices", str(full), "--repeat", str(args.repeat)]
    )
    base = results["stabfrag"][0]["median_s"]
    print(
        f"\nsubset: {args.subset} entities, {results['stabfrag'][0]['rows']:,} rows, all features"
    )
    print(f"{'engine':10} {'median s':>10} {'runs':>28} {'x stabfrag':>11} {'peak RSS MB':>12}")
    for name, (res, rss) in results.items():
        runs = ", ".join(f"{t:.2f}" for t in res["runs_s"])
        print(
            f"{name:10} {res['median_s']:10.2f} {runs:>28} {res['median_s'] / base:11.1f} "
            f"{rss:12.0f}"
        )
    print(f"\nfull panel: {args.entities} x {args.days}, {full_res['rows']:,} rows")
    runs = ", ".join(f"{t:.2f}" for t in full_res["runs_s"])
    print(
        f"stabfrag   median {full_res['median_s']:.2f} s (runs {runs}), "
        f"peak RSS {full_rss:.0f} MB, "
        f"{full_res['rows'] / statistics.median(full_res['runs_s']) / 1e6:.2f} M rows/s"
    )


if __name__ == "__main__":
    main()
