"""Hostile inputs, table-driven: nothing leaked, nothing silently wrong, no traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabfrag.cli import app

runner = CliRunner()
SECRET = "S3cr3tPa55w0rd"
MALFORMED_DSNS = [
    f"postgresql//root:{SECRET}@127.0.0.1:5432/db",  # no ':' after the scheme
    f"root:{SECRET}@127.0.0.1:5432/db",  # no scheme
    f"postgresql://root:a@{SECRET}@127.0.0.1:5433/db",  # an unencoded '@' in the password
    f"postgresql://root:{SECRET}@127.0.0.1:1/db",  # well formed, nothing listening
    f"host=127.0.0.1 port=1 user=root password={SECRET}",
    f"host=127.0.0.1 port=1 user=root password='{SECRET} x'",
    f"postgresql://root:{SECRET}@127.0.0.1:5432/db?sslmode=bogus",
]
# Well formed, so the DSN is tried: nothing answers there (libpq reports a bad sslmode as a
# failed connection too). The run fails (exit 1); a DSN that does not parse is usage (2).
TRIED_DSNS = set(MALFORMED_DSNS[3:])


def _leaks(text: str) -> list[str]:
    """Substrings of the secret (5 characters or more) that appear in `text`."""
    return [SECRET[i : i + 5] for i in range(len(SECRET) - 4) if SECRET[i : i + 5] in text]


@pytest.mark.parametrize("dsn", MALFORMED_DSNS)
def test_a_bad_dsn_never_shows_its_password(dsn: str, built: Path, tmp_path: Path) -> None:
    calls = [
        ["db", "init", "--pg-dsn", dsn],
        ["load", "--out", str(built), "--pg-dsn", dsn],
    ]
    for args in calls:
        res = runner.invoke(app, args)
        output = res.stdout + res.stderr
        assert res.exit_code == (1 if dsn in TRIED_DSNS else 2), (args, output)
        assert "Traceback" not in output
        assert not _leaks(output), (args, output)
        assert len(res.stderr.strip().splitlines()) == 1, output
    res = runner.invoke(app, ["db", "init"], env={"STABFRAG_PG_DSN": dsn})
    assert res.exit_code == (1 if dsn in TRIED_DSNS else 2)
    assert not _leaks(res.stdout + res.stderr)


def test_build_refuses_a_bad_dsn_before_it_builds(market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(out),
        ],
        env={"STABFRAG_PG_DSN": MALFORMED_DSNS[0]},
    )
    assert res.exit_code == 2 and not _leaks(res.stdout + res.stderr)
    assert not (out / "joint_embeddings").exists()


@pytest.mark.parametrize("as_of", ["2042-12-31", "0001-01-01", "1990-01-01"])
def test_build_outside_the_data_is_refused(as_of: str, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            as_of,
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2, res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "holds dates from" in line, line
    assert not (out / "joint_embeddings").exists()


@pytest.mark.parametrize("weights", ["stab=0,scen=0,prof=0", "stab=0,scen=0"])
def test_weights_that_leave_no_branch_are_refused(weights: str, market_dir: Path) -> None:
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--weights",
            weights,
        ],
    )
    assert res.exit_code == 2 and "stab or scen" in res.stderr, res.stderr


def test_a_library_without_high_scenarios_gives_null_fragility(
    market_dir: Path, tmp_path: Path
) -> None:
    import json

    import polars as pl

    from stabfrag.sinks.dataset import read_table

    library = tmp_path / "lib"
    library.mkdir()
    (library / "medium.toml").write_text(
        """[[scenario]]
id = "SCN_ONLY_MEDIUM"
kind = "synthetic"
shock_type = "EQUITY_CRASH"
severity = "MEDIUM"
description = "a fall"
horizon_days = 40
price_shock = -0.2
vol_multiplier = 2.0
volume_multiplier = 1.5
"""
    )
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--scenarios",
            str(library),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert any("HIGH" in w for w in summary["warnings"]), summary
    rows = read_table(out, "joint_embeddings", __import__("datetime").date(2024, 12, 31))
    states = rows.filter(pl.col("kind") == "entity")
    assert states["fragility"].null_count() == states.height
    # Reporting null fragility is quiet: no numpy RuntimeWarning reaches the terminal.
    import warnings

    entity = states["entity_id"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = runner.invoke(
            app,
            ["report", "--out", str(out), "--html", str(tmp_path / "r.html"), "--entity", entity],
        )
    assert res.exit_code == 0, (res.stderr, res.exception)
    page = (tmp_path / "r.html").read_text()
    if importlib.util.find_spec("vl_convert") is None:  # no charts: the tables only
        return
    assert f'"name": "{entity}", "kind": "entity state", "fragility": null' in page
    assert "isValid(datum.fragility) ? format(datum.fragility, '.3f') : 'n/a'" in page
    assert not states["fragility"].is_nan().any()


def test_sinks_refuse_non_finite_vectors(built: Path, tmp_path: Path) -> None:
    import numpy as np
    import polars as pl

    from stabfrag.errors import SinkError
    from stabfrag.schema import VECTOR_TYPE
    from stabfrag.sinks.base import Partition
    from stabfrag.sinks.dataset import partitions, read_table
    from stabfrag.sinks.parquet import ParquetSink

    day = partitions(built)[-1]
    joint = read_table(built, "joint_embeddings", day)
    vectors = joint["vector"].to_numpy().copy()
    vectors[0, 0] = np.nan
    bad = joint.with_columns(pl.Series("vector", vectors, dtype=VECTOR_TYPE))
    sink = ParquetSink(tmp_path / "o")
    with pytest.raises(SinkError, match="non-finite"), sink:
        sink.write(Partition(day, {"joint_embeddings": bad}))
        sink.commit()
    assert not (tmp_path / "o" / "joint_embeddings").exists() or not any(
        (tmp_path / "o").rglob("part-0.parquet")
    )
    # A float column is checked as the vector is: an infinite fragility, a NaN feature.
    inf = joint.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(np.inf).otherwise("fragility").alias("fragility")
    )
    feats = read_table(built, "features", day)
    nan = feats.with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(np.nan).otherwise("vol_21").alias("vol_21")
    )
    for table, frame, column in (
        ("joint_embeddings", inf, "fragility"),
        ("features", nan, "vol_21"),
    ):
        with pytest.raises(SinkError, match=f"column {column} holds non-finite"), sink:
            sink.write(Partition(day, {table: frame}))


def _copy(built: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(built, out)
    return out


@pytest.mark.pg
def test_load_takes_only_committed_partitions(
    built: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    """A partition without its manifest (a write that crashed) is not loaded."""
    import psycopg
    from psycopg import sql

    from stabfrag.sinks.dataset import manifest_path, partitions

    out = _copy(built, tmp_path)
    days = partitions(out)
    manifest_path(out, days[-1]).unlink()
    table = f"{pg_schema}.joint_embeddings"
    assert (
        runner.invoke(app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", table]).exit_code == 0
    )
    res = runner.invoke(app, ["load", "--out", str(out), "--pg-dsn", pg_dsn, "--pg-table", table])
    assert res.exit_code == 0, res.stderr
    with psycopg.connect(pg_dsn) as conn:
        loaded = conn.execute(
            sql.SQL("SELECT DISTINCT as_of_date FROM {} ORDER BY 1").format(
                sql.Identifier(pg_schema, "joint_embeddings")
            )
        ).fetchall()
    assert [d for (d,) in loaded] == days[:-1]


def test_a_stray_folder_is_ignored(built: Path, tmp_path: Path) -> None:
    """A copied-aside partition folder neither crashes the readers nor doubles a date."""
    import shutil

    import duckdb

    from stabfrag.sinks.dataset import partition_dir, partitions
    from stabfrag.sinks.duckdb import write_views

    out = _copy(built, tmp_path)
    day = partitions(out)[-1]
    for table in ("joint_embeddings", "features"):
        src = partition_dir(out, table, day)
        shutil.copytree(src, src.with_name(src.name + ".bak"))
    write_views(out)
    assert partitions(out)[-1] == day
    res = runner.invoke(app, ["query", "fragile", "--out", str(out), "--format", "csv"])
    assert res.exit_code == 0 and "Traceback" not in res.stdout + res.stderr, res.stderr
    con = duckdb.connect(str(out / "stabfrag.duckdb"), read_only=True)
    con.execute(f"SET file_search_path = '{out}'")
    try:
        n = con.execute(
            "SELECT count(*) FROM joint_embeddings WHERE as_of_date = ?", [day]
        ).fetchone()
    finally:
        con.close()
    from stabfrag.sinks.dataset import read_table

    assert n is not None and n[0] == read_table(out, "joint_embeddings", day).height


def test_a_copied_output_folder_reads_its_own_files(built: Path, tmp_path: Path) -> None:
    """Views resolve relative to their folder: a copy answers from itself, and keeps
    answering once the original is gone."""
    import shutil

    from stabfrag.sinks.duckdb import write_views

    original = _copy(built, tmp_path)
    write_views(original)  # the views of the folder that is then moved
    copy = tmp_path / "moved"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    res = runner.invoke(app, ["query", "fragile", "--out", str(copy), "--format", "csv"])
    assert res.exit_code == 0 and "Traceback" not in res.stdout + res.stderr, res.stderr
    assert res.stdout.count("\n") > 1


def _prices_with_ids(ids: list[str], days: int = 70):
    import datetime as dt

    import polars as pl

    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    return pl.DataFrame(
        {
            "entity_id": [e for e in ids for _ in dates],
            "date": dates * len(ids),
            "close": [100.0 + i for _ in ids for i in range(days)],
        }
    )


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("   ", "blank"),
        (" E00001.EU ", "surrounding spaces"),
        ("E0\n1", "control character"),
        ("E0\t1", "control character"),
        ("E0\x001", "control character"),
    ],
)
def test_bad_entity_ids_are_rejected(bad: str, why: str, tmp_path: Path) -> None:
    from stabfrag.ingest.prices import read_prices, validate

    path = tmp_path / "p.parquet"
    _prices_with_ids(["E00001.EU", bad]).write_parquet(path)
    v = validate(read_prices(path))
    rejected = v.rejects.filter(v.rejects["reason"] == "bad_entity_id")
    assert rejected.height == 70 and why in rejected["detail"][0], rejected["detail"][0]
    assert "\n" not in rejected["detail"][0] and "\x00" not in rejected["detail"][0]
    assert v.prices["entity_id"].unique().to_list() == ["E00001.EU"]
    assert v.entities_in == 1  # a rejected id is not an entity
    assert v.rows_in == v.prices.height + v.rows_rejected + v.rows_of_rejected_entities


def test_timestamps_become_dates_by_a_stated_rule(tmp_path: Path) -> None:
    """A timestamp is a date when it is midnight in UTC or in its own time zone; any other
    time of day is rejected as bad_date."""
    import datetime as dt

    import polars as pl

    from stabfrag.ingest.prices import read_prices, validate

    frame = _prices_with_ids(["A.US"], days=80)
    utc_midnight = frame.with_columns(
        pl.col("date").cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("America/New_York")
    )
    path = tmp_path / "ny.parquet"
    utc_midnight.write_parquet(path)
    assert validate(read_prices(path)).prices["date"].to_list() == frame["date"].to_list()
    local_midnight = frame.with_columns(
        pl.col("date").cast(pl.Datetime("us")).dt.replace_time_zone("America/New_York")
    )
    local_midnight.write_parquet(path)
    assert validate(read_prices(path)).prices["date"].to_list() == frame["date"].to_list()
    afternoon = frame.with_columns(
        pl.col("date").cast(pl.Datetime("us")) + dt.timedelta(hours=15, minutes=30)
    )
    afternoon.write_parquet(path)
    v = validate(read_prices(path))
    assert v.prices.height == 0
    assert set(v.rejects["reason"]) == {"bad_date", "no_valid_rows"}


def test_evaluate_says_why_a_figure_is_missing(
    built: Path, market_dir: Path, tmp_path: Path
) -> None:
    """Only stress labelled: no AUC can be computed, and evaluate says so (null, never NaN);
    queries without an eligible neighbour are left out and counted, not scored zero."""
    import json

    labels = tmp_path / "labels.csv"
    labels.write_text("start,end,label\n2000-01-01,2030-12-31,stress\n")
    res = runner.invoke(
        app,
        ["evaluate", "--out", str(built), "--labels", str(labels), "--json", "--compare", "none"],
    )
    assert res.exit_code == 0, res.stderr
    assert "NaN" not in res.stdout
    result = json.loads(res.stdout)
    for figures in result["figures"].values():
        assert figures["state_auc"] is None and figures["calm_to_high"] is None
    assert "calm" in result["unavailable"]["state_auc"]
    assert result["states"]["analog_queries_without_neighbours"] >= 0
    res = runner.invoke(app, ["evaluate", "--out", str(built), "--labels", str(labels)])
    assert res.exit_code == 0 and "nan" not in res.stdout.lower()
    assert "state_auc: n/a" in res.stdout


def _corrupt_parquet(prices: Path, tmp_path: Path) -> Path:
    """A prices Parquet file whose footer is intact but whose data pages are garbage."""
    import polars as pl

    path = tmp_path / "corrupt.parquet"
    pl.read_parquet(prices).head(20000).write_parquet(path, compression="zstd")
    raw = bytearray(path.read_bytes())
    for i in range(200, min(len(raw) - 2000, 6000)):
        raw[i] = (raw[i] * 7 + 13) % 256
    path.write_bytes(bytes(raw))
    return path


def test_cli_never_ends_in_a_traceback(built: Path, market_dir: Path, tmp_path: Path) -> None:
    prices = str(market_dir / "prices.parquet")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    corrupt = str(_corrupt_parquet(market_dir / "prices.parquet", tmp_path))
    labels = market_dir / "labels.csv"
    cases = [
        ["validate", "--prices", corrupt],
        ["build", "--as-of", "2024-12-31", "--prices", corrupt, "--out", str(tmp_path / "c")],
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            prices,
            "--entities",
            str(tmp_path / "missing.parquet"),
            "--out",
            str(tmp_path / "m"),
        ],
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            prices,
            "--entities",
            str(tmp_path),
            "--out",
            str(tmp_path / "f"),
        ],
        [
            "backfill",
            "--start",
            "2024-10-01",
            "--end",
            "2024-12-31",
            "--freq",
            "month",
            "--prices",
            prices,
            "--entities",
            str(tmp_path / "missing.parquet"),
            "--out",
            str(tmp_path / "b"),
        ],
        ["build", "--as-of", "2024-12-31", "--prices", prices, "--out", str(a_file)],
        [
            "generate",
            "--out",
            str(tmp_path / "g"),
            "--entities",
            "5",
            "--days",
            "300",
            "--seed",
            "1",
        ],
        ["sql", "SELECT * FROM nowhere", "--out", str(built)],
        ["sql", "SELECT 1", "--out", str(tmp_path / "nothing-built")],
        ["sql", "fragile", "--out", str(built), "--param", "as_of=not-a-date"],
        ["validate", "--prices", prices, "--rejects-out", str(tmp_path / "no" / "dir.csv")],
        ["report", "--out", str(tmp_path / "nothing-built"), "--html", str(tmp_path / "r.html")],
        # An output named inside a file, or a folder that is a file: one line, exit 2.
        ["report", "--out", str(built), "--html", str(a_file / "r.html")],
        ["evaluate", "--out", str(built), "--labels", str(labels), "--plot", str(a_file)],
        ["evaluate", "--out", str(built), "--labels", str(labels), "--plot", str(a_file / "p")],
        ["profiles", "build", "--prices", prices, "--as-of", "2024-12-31", "--out", str(a_file)],
        [
            "calibrate",
            "--prices",
            prices,
            "--start",
            "2024-01-01",
            "--end",
            "2024-12-31",
            "--model-dir",
            str(a_file),
        ],
        ["index", "build", "--out", str(a_file)],
        ["index", "build", "--out", str(tmp_path / "nothing-built")],
        ["index", "update", "--out", str(a_file)],
        ["prices", "partition", "--prices", prices, "--out", str(a_file / "years")],
    ]
    for args in cases:
        res = runner.invoke(app, args)
        output = res.stdout + res.stderr
        assert (
            "Traceback" not in output
            and res.exception is None
            or isinstance(res.exception, SystemExit)
        ), (args, repr(res.exception))
        assert res.exit_code in (0, 2), (args, res.exit_code, output)
        if res.exit_code == 2:
            assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)


def test_an_os_error_mid_run_is_one_line_and_exit_1(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills while the page is written: no traceback, and the exit code of a
    # run that failed (a retry may pass), naming the file.
    import errno

    from stabfrag.analysis import report

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r.html"))

    monkeypatch.setattr(report, "build_report", full)
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.exit_code == 1, res.output
    assert res.stderr == f"stabfrag: {tmp_path / 'r.html'}: No space left on device\n"

    # A reader that closed the pipe (`stabfrag query ... | head`) is not an error to tell.
    def closed(*_args: object, **_kwargs: object) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(report, "build_report", closed)
    res = runner.invoke(app, ["report", "--out", str(built), "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and res.stderr == "", res.stderr


def test_ids_print_as_plain_text(tmp_path: Path) -> None:
    """An entity id that looks like rich markup is shown as it is."""
    import datetime as dt

    import numpy as np
    import polars as pl

    days = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(400)]
    rng = np.random.default_rng(1)
    ids = ["[/red]", "[bold red]X[/bold red]", "PLAIN.US"]
    frame = pl.DataFrame(
        {
            "entity_id": [e for e in ids for _ in days],
            "date": days * len(ids),
            "close": np.exp(np.cumsum(rng.normal(0, 0.01, 400 * len(ids)))) * 100,
            "volume": rng.uniform(1e5, 1e6, 400 * len(ids)),
        }
    )
    prices = tmp_path / "p.parquet"
    frame.write_parquet(prices)
    out = tmp_path / "o"
    res = runner.invoke(
        app, ["build", "--as-of", str(days[-1]), "--prices", str(prices), "--out", str(out)]
    )
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["query", "fragile", "--out", str(out)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.stderr
    assert "[/red]" in res.stdout and "[bold red]X[/bold red]" in res.stdout, res.stdout


def _scopes(pg_dsn: str, pg_schema: str) -> list[dict]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT entity_scope FROM {}").format(
                sql.Identifier(pg_schema, "joint_embeddings")
            )
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.pg
def test_a_second_book_keeps_the_first(
    market_dir: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    """Two books of one date in one table: each load replaces only what it brings."""
    import json

    import polars as pl

    prices = pl.read_parquet(market_dir / "prices.parquet")
    ids = sorted(prices["entity_id"].unique().to_list())
    table = f"{pg_schema}.joint_embeddings"
    runner.invoke(app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", table])
    summaries = []
    for name, book in (("a", ids[:60]), ("b", ids[60:120])):
        path = tmp_path / f"{name}.parquet"
        prices.filter(pl.col("entity_id").is_in(book)).write_parquet(path)
        res = runner.invoke(
            app,
            [
                "build",
                "--as-of",
                "2024-12-31",
                "--prices",
                str(path),
                "--out",
                str(tmp_path / name),
                "--pg-dsn",
                pg_dsn,
                "--pg-table",
                table,
                "--json",
            ],
        )
        assert res.exit_code == 0, res.stderr
        summaries.append(json.loads(res.stdout))
    entities = {s["entity_id"] for s in _scopes(pg_dsn, pg_schema) if "entity_id" in s}
    assert {e for e in entities if e in ids[:60]} and {e for e in entities if e in ids[60:120]}
    # Book B replaced only what both bring: the scenario rows of the date.
    assert summaries[1]["database"]["rows_deleted"] == summaries[0]["scenario_rows"]
    assert summaries[1]["database"]["rows_inserted"] == (
        summaries[1]["states_out"] + summaries[1]["scenario_rows"]
    )
    res = runner.invoke(
        app,
        [
            "load",
            "--out",
            str(tmp_path / "b"),
            "--pg-dsn",
            pg_dsn,
            "--pg-table",
            table,
            "--replace-slice",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    entities = {s["entity_id"] for s in _scopes(pg_dsn, pg_schema) if "entity_id" in s}
    assert entities and entities <= set(ids[60:120])  # the whole slice was replaced


@pytest.mark.pg
def test_a_load_is_all_or_nothing_and_says_its_build(
    built: Path, tmp_path: Path, pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the first batch of a load commits nothing; rows name their build."""
    from stabfrag.errors import SinkError
    from stabfrag.sinks import postgres
    from stabfrag.sinks.dataset import partitions, read_manifest

    table = f"{pg_schema}.joint_embeddings"
    postgres.init_table(pg_dsn, table)
    monkeypatch.setattr(postgres, "BATCH_ROWS", 50)  # a batch per partition
    calls = []

    def fail_late(sent: int) -> None:
        calls.append(sent)
        if len(calls) > 3:
            raise OSError("connection lost")

    with pytest.raises(SinkError):
        postgres.load_partitions(built, pg_dsn, table, first=None, last=None, hook=fail_late)
    assert _scopes(pg_dsn, pg_schema) == []
    postgres.load_partitions(built, pg_dsn, table, first=None, last=None)
    scopes = _scopes(pg_dsn, pg_schema)
    manifest = read_manifest(built, partitions(built)[-1])
    assert manifest is not None
    assert {s["build"]["input_fingerprint"] for s in scopes} == {manifest["input_fingerprint"]}
    assert all(s["build"]["models"] == manifest["models"] for s in scopes)


def test_a_weight_named_twice_is_refused() -> None:
    from stabfrag.config import parse_weights
    from stabfrag.errors import ConfigError

    with pytest.raises(ConfigError, match="stab is given twice"):
        parse_weights("stab=1,stab=2")


@pytest.mark.parametrize(
    "name", ["x; drop table y", "joint embeddings", "risk.joint-embeddings", "a.b.c", '"x"y']
)
def test_a_table_name_must_be_a_plain_identifier(name: str) -> None:
    from stabfrag.errors import SinkError
    from stabfrag.sinks.postgres import table_ident

    with pytest.raises(SinkError, match="plain identifiers"):
        table_ident(name)


@pytest.mark.parametrize("name", ["joint_embeddings", "risk.joint_embeddings", '"Risk Desk".jt'])
def test_plain_and_deliberately_quoted_table_names_pass(name: str) -> None:
    from stabfrag.sinks.postgres import table_ident

    table_ident(name)


def test_conflicting_entity_rows_are_one_line(market_dir: Path, tmp_path: Path) -> None:
    import polars as pl

    path = tmp_path / "entities.csv"
    pl.DataFrame(
        {
            "entity_id": ["E00001.US", "E00001.US", "E00002.US", "E00002.US"],
            "entity_type": ["ISSUER", "MARKET", "ISSUER", "ISSUER"],
        }
    ).write_csv(path)
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--entities",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2, res.stdout
    assert "E00001.US" in res.stderr and "conflicting" in res.stderr
    assert "E00002.US" not in res.stderr  # identical duplicates are harmless


def test_an_entities_file_that_matches_nothing_is_said(market_dir: Path, tmp_path: Path) -> None:
    import json

    import polars as pl

    path = tmp_path / "entities.csv"
    pl.DataFrame({"entity_id": ["NOT.A.PRICE"], "entity_type": ["ISSUER"]}).write_csv(path)
    res = runner.invoke(
        app,
        [
            "build",
            "--as-of",
            "2024-12-31",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--entities",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    warnings = json.loads(res.stdout)["warnings"]
    assert any("matches none" in w for w in warnings), warnings


def test_validate_and_build_count_an_all_rejected_file_alike(tmp_path: Path) -> None:
    """Every row rejected: both commands count the ten entities in, and out as no_valid_rows."""
    import datetime as dt
    import json

    import polars as pl

    path = tmp_path / "bad.parquet"
    days = [dt.date(2024, 1, d) for d in (2, 3, 4)]
    pl.DataFrame(
        {
            "entity_id": [f"E{i}" for i in range(10) for _ in days],
            "date": days * 10,
            "close": [-1.0] * 30,
        }
    ).write_parquet(path)
    checked = json.loads(runner.invoke(app, ["validate", "--prices", str(path), "--json"]).stdout)
    res = runner.invoke(
        app,
        ["build", "--as-of", "2024-01-04", "--prices", str(path), "--out", str(tmp_path / "o")]
        + ["--json"],
    )
    built = json.loads(res.stdout)
    for key in ("entities_in", "entities_rejected"):  # one date: entity states are entities
        assert checked[key] == built[key.replace("entities", "entity_states")] == 10, key
    assert built["entity_rejects_by_reason"] == {"no_valid_rows": 10}
    assert built["states_out"] == 0 and built["rows_rejected"] == 30


def test_a_negative_spread_is_dropped_and_counted(tmp_path: Path) -> None:
    import json

    import polars as pl

    from stabfrag.synth import generate

    market = generate(entities=12, days=200, seed=3)
    prices = market.prices.with_columns(spread_bps=pl.lit(120.0))
    hit = (pl.col("entity_id") == prices["entity_id"][0]) & (pl.int_range(pl.len()) < 3)
    path = tmp_path / "p.parquet"
    prices.with_columns(
        pl.when(hit).then(-50.0).otherwise(pl.col("spread_bps")).alias("spread_bps")
    ).write_parquet(path)
    res = runner.invoke(app, ["validate", "--prices", str(path), "--json"])
    summary = json.loads(res.stdout)
    assert summary["spread_dropped"] == 3 and summary["rows_rejected"] == 0
