from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.features.registry import LOOKBACK_ROWS
from stabfrag.ingest import window
from stabfrag.schema import DIM, JOINT_SCHEMA
from stabfrag.sinks.dataset import partition_dir, partitions, read_table

runner = CliRunner()


def _last(built: Path) -> dt.date:
    return partitions(built)[-1]


def test_vectors_are_unit_float32_384(built: Path) -> None:
    for d in partitions(built):
        joint = read_table(built, "joint_embeddings", d)
        assert joint.schema["vector"] == pl.Array(pl.Float32, DIM)
        v = joint["vector"].to_numpy()
        assert v.dtype == np.float32 and v.shape[1] == DIM
        assert np.isfinite(v).all()
        np.testing.assert_allclose(np.linalg.norm(v.astype(np.float64), axis=1), 1.0, atol=1e-5)


def test_every_partition_has_the_declared_schema(built: Path) -> None:
    for d in partitions(built):
        assert read_table(built, "joint_embeddings", d).schema == JOINT_SCHEMA


def test_rerun_gives_identical_bytes(built: Path, market_dir: Path, tmp_path: Path) -> None:
    d = _last(built)
    config = BuildConfig(
        prices=market_dir / "prices.parquet", entities=market_dir / "entities.parquet", out=tmp_path
    )
    loop.run(config, [d])
    loop.run(config, [d])
    # The fixture built several dates in one run, this run one date twice: same bytes.
    # (Rejects differ by design: a multi-date run reports each row reject once.)
    for table in ("joint_embeddings", "features"):
        a = (partition_dir(tmp_path, table, d) / "part-0.parquet").read_bytes()
        b = (partition_dir(built, table, d) / "part-0.parquet").read_bytes()
        assert a == b, table


def test_duckdb_views_give_float384_and_cosine(built: Path) -> None:
    con = duckdb.connect(str(built / "stabfrag.duckdb"), read_only=True)
    con.execute(f"SET file_search_path = '{built}'")  # the views' paths are relative
    kind = con.sql("SELECT typeof(vector) FROM joint_embeddings LIMIT 1").fetchall()[0][0]
    assert kind == f"FLOAT[{DIM}]"
    sims = con.sql(
        "SELECT array_cosine_similarity(a.vector, a.vector) FROM joint_embeddings a LIMIT 5"
    ).fetchall()
    assert all(abs(s[0] - 1) < 1e-5 for s in sims)
    for view in ("features", "rejects", "scenarios"):
        con.sql(f"SELECT count(*) FROM {view}").fetchall()
    con.close()


def test_parquet_queried_directly_with_a_cast(built: Path) -> None:
    glob = str(built / "joint_embeddings" / "*" / "*.parquet")
    con = duckdb.connect()
    n = con.sql(
        f"SELECT count(*) FROM read_parquet('{glob}') "
        f"WHERE array_cosine_similarity(vector::FLOAT[{DIM}], vector::FLOAT[{DIM}]) > 0.99"
    ).fetchall()[0][0]
    assert n > 0


def test_entity_scope_is_exactly_the_spec(built: Path) -> None:
    joint = read_table(built, "joint_embeddings", _last(built))
    ent = joint.filter(pl.col("kind") == "entity").row(0, named=True)
    scope = json.loads(ent["entity_scope"])
    assert list(scope) == ["entity_type", "entity_id", "region", "source", "stab_window"]
    assert list(scope["stab_window"]) == ["start_date", "end_date"]
    assert scope["entity_id"] == ent["entity_id"]
    assert scope["region"] == ent["entity_id"].rsplit(".", 1)[1]
    assert scope["source"] == "stab+scenarios"
    assert scope["entity_type"] in ("INSTRUMENT", "ISSUER", "MARKET")
    dt.date.fromisoformat(scope["stab_window"]["start_date"])
    scen = joint.filter(pl.col("kind") == "scenario").row(0, named=True)
    s = json.loads(scen["entity_scope"])
    assert list(s)[:4] == ["entity_type", "scenario_id", "source", "metadata"]
    assert s["entity_type"] == "SCENARIO" and s["source"] == "scenarios"
    assert {"shock_type", "severity"} <= set(s["metadata"])
    from stabfrag.model.bundle import DEFAULT_JOINT

    assert ent["model_id"] == DEFAULT_JOINT and ent["joint_type"] == "STAB_FRAGILITY_V0"


@pytest.mark.parametrize(
    ("scenarios", "factors", "has_profile", "source"),
    [
        (False, False, False, "stab"),
        (True, False, True, "stab+scenarios+profile"),
        (True, True, False, "stab+scenarios+factors"),
        (False, True, True, "stab+factors+profile"),
    ],
)
def test_the_source_names_the_parts_of_the_vector(
    scenarios: bool, factors: bool, has_profile: bool, source: str
) -> None:
    from stabfrag.engine.rows import entity_scope

    row = pl.DataFrame(
        {
            "entity_type": ["MARKET"],
            "entity_id": ["M.US"],
            "region": ["US"],
            "window_start": [dt.date(2024, 1, 2)],
            "date": [dt.date(2024, 12, 31)],
        }
    )
    scope = row.select(
        entity_scope(pl.Series([has_profile]), scenarios=scenarios, factors=factors)
    ).item()
    assert json.loads(scope)["source"] == source


def test_scenario_rows_in_every_partition_point_in_time(built: Path) -> None:
    """Every partition holds every scenario that exists on its date, and no other: a
    historical episode only once it is known (its end), synthetic scenarios always."""
    from stabfrag.scenarios.library import load_library

    library = load_library()
    for d in partitions(built):
        rows = read_table(built, "joint_embeddings", d).filter(pl.col("kind") == "scenario")
        expected = [s.id for s in library if s.known_on(d)]
        assert rows["scenario_id"].to_list() == expected
        assert read_table(built, "scenarios", d)["scenario_id"].to_list() == expected
        assert len(expected) >= 16
        named = read_table(built, "joint_embeddings", d)["nearest_scenario_id"].drop_nulls()
        assert set(named) <= set(expected)  # never an episode from the future


def test_counts_reconcile(market_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["entity_states_in"] == s["states_out"] + s["entity_states_rejected"]
    manifest = json.loads(
        (
            partition_dir(tmp_path, "joint_embeddings", dt.date(2024, 12, 31)) / "_manifest.json"
        ).read_text()
    )
    c = manifest["counts"]
    assert c["entities_in"] == c["states"] + c["entities_rejected"]
    assert s["models"] == manifest["models"] and len(s["models"]) == 3


def test_build_bad_date_and_bad_file_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["build", "--as-of", "2024-13-01", "--prices", "x.parquet"])
    assert res.exit_code == 2 and "not a date" in res.stderr
    bad = tmp_path / "p.parquet"
    bad.write_text("nope")
    res = runner.invoke(app, ["build", "--as-of", "2024-01-01", "--prices", str(bad)])
    assert res.exit_code == 2 and "not a Parquet file" in res.stderr


def test_build_with_defects_reports_rejects(market, tmp_path: Path) -> None:
    from stabfrag.synth import inject_defects

    path = tmp_path / "p.parquet"
    inject_defects(market.prices, seed=3).write_parquet(path)
    last = market.prices["date"].max()
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            str(last),
            "--prices",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--json",
            "--max-reject-share",
            "0",
        ],
    )
    assert res.exit_code == 3  # done, with rejects above a zero share
    s = json.loads(res.stdout)
    rej = read_table(tmp_path / "o", "rejects", last)
    assert (
        s["rows_rejected"]
        == rej.filter(
            ~pl.col("reason").is_in(["insufficient_history", "stale", "degenerate_state"])
        ).height
    )
    assert rej["reason"].is_in(["nonfinite_close", "duplicate", "bad_entity_id"]).any()


def test_weights_option_is_checked(market_dir: Path) -> None:
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--weights",
            "stab=1,bogus=2",
        ],
    )
    assert res.exit_code == 2 and "--weights" in res.stderr


def test_read_window_reads_lookback_or_whole_history_of_sparse_entities(tmp_path: Path) -> None:
    # A daily entity and a weekly one: the weekly one needs years of history for 295 prices.
    days = [dt.date(2010, 1, 1) + dt.timedelta(days=i) for i in range(4000)]
    daily = pl.DataFrame({"entity_id": "D", "date": days, "close": 1.0 + np.arange(4000)})
    weekly = pl.DataFrame({"entity_id": "W", "date": days[::7], "close": 1.0 + np.arange(572)})
    path = tmp_path / "p.parquet"
    pl.concat([daily, weekly]).write_parquet(path)
    last = days[-1]
    raw = window.read_window(
        path, first=last, last=last, include_undated=False, min_rows=LOOKBACK_ROWS
    )
    d_rows = raw.filter(pl.col("entity_id") == "D")
    assert d_rows["date"].min() >= last - dt.timedelta(days=window.LOOKBACK_DAYS)
    assert raw.filter(pl.col("entity_id") == "W").height == 572
    # X trades daily, but most of its look-back's closes are invalid: short only once its
    # rows are judged. The older rows of W and X come back where the file has them (entity
    # order, date order), as one scan of the window and the short histories would read them.
    start = last - dt.timedelta(days=window.LOOKBACK_DAYS)
    bad = pl.Series([d >= start and i % 3 > 0 for i, d in enumerate(days)])
    invalid = daily.with_columns(
        pl.lit("X").alias("entity_id"), pl.when(bad).then(-1.0).otherwise("close").alias("close")
    )
    for order in ("entity_id", "date"):
        file = tmp_path / f"by_{order}.parquet"
        both = pl.concat([daily, weekly, invalid]).sort(order, maintain_order=True)
        both.write_parquet(file)
        expected = both.with_row_index("_row").filter(
            (pl.col("date") >= start) | pl.col("entity_id").is_in(["W", "X"])
        )
        raw = window.read_window(
            file, first=last, last=last, include_undated=False, min_rows=LOOKBACK_ROWS
        )
        assert raw.select("entity_id", "date", "close").equals(expected.drop("_row"))
        assert raw["_row"].to_list() == expected["_row"].to_list()


def test_read_window_counts_no_entity_when_nothing_is_older(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every row falls inside the look-back (a backfill's first chunk): a short history has
    # nothing older to read, so the window is read as it is, without counting entities.
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(400)]
    frame = pl.DataFrame(
        {
            "entity_id": ["L"] * 400 + ["S"] * 10 + [None],
            "date": [*days, *days[-10:], None],
            "close": 1.0 + np.arange(411.0),
        }
    )
    path = tmp_path / "p.parquet"
    frame.write_parquet(path)

    def counted(*_: object, **__: object) -> None:
        raise AssertionError("entities were counted")

    monkeypatch.setattr(window, "judge_ids", counted)
    raw = window.read_window(
        path, first=days[-1], last=days[-1], include_undated=True, min_rows=LOOKBACK_ROWS
    )
    assert raw.select("entity_id", "date", "close").equals(frame)
    assert raw["_row"].to_list() == list(range(411))


def test_empty_tables_give_partitions_with_zero_rows(tmp_path: Path) -> None:
    # Day 30: every entity has too short a history (no features); day 199: no rejects.
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(200)]
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {
            "entity_id": [f"E{e}.US" for e in range(3) for _ in days],
            "date": days * 3,
            "close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600))),
            "volume": 1000.0 + rng.random(600),
        }
    )
    prices = tmp_path / "p.parquet"
    frame.write_parquet(prices)
    out = tmp_path / "out"
    loop.run(BuildConfig(prices=prices, out=out), [days[30], days[199]])
    from stabfrag.sinks.dataset import TABLE_SCHEMAS

    features = read_table(out, "features", days[30])
    assert features.height == 0 and features.schema == TABLE_SCHEMAS["features"]
    assert read_table(out, "rejects", days[30])["reason"].to_list() == ["insufficient_history"] * 3
    rejects = read_table(out, "rejects", days[199])
    assert rejects.height == 0 and rejects.schema == TABLE_SCHEMAS["rejects"]
    joint = read_table(out, "joint_embeddings", days[30])
    assert set(joint["kind"]) == {"scenario"}


def test_a_non_finite_value_stops_the_build_before_any_write(
    market_dir: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The chunk's tables are checked whole (not per date in the sink): still one line,
    naming the table, the date and the column, and nothing lands."""
    from stabfrag.engine import states as builder

    real = builder.compute_features

    def with_an_infinity(series: pl.DataFrame, **kwargs: np.ndarray | None) -> pl.DataFrame:
        feats = real(series, **kwargs)
        # A defect upstream of the sinks: one state's feature is infinite.
        return feats.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(np.inf)
            .otherwise("max_dd_63")
            .alias("max_dd_63")
        )

    monkeypatch.setattr(builder, "compute_features", with_an_infinity)
    args = ["build", "--as-of", "2024-12-31", "--prices", str(market_dir / "prices.parquet")]
    res = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "features 2024-12-31: column max_dd_63 holds non-finite values" in res.stderr
    assert not list(tmp_path.rglob("*.parquet"))
