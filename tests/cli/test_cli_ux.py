"""What a new user meets first: the version, flag help, SQL without a DuckDB shell, whole
ids in tables, the rejects of validate, and a run summary that names what it times."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from stabfrag import __version__
from stabfrag.cli import app
from stabfrag.sinks.dataset import partitions

runner = CliRunner()


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"stabfrag {__version__}"


def test_flags_show_as_flags_in_help() -> None:
    res = runner.invoke(app, ["validate", "--help"])
    assert res.exit_code == 0
    assert "<bool>" not in res.stdout
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith("--json"))
    assert "bool" not in line.lower() and "Print a machine-readable summary." in line


def test_sql_runs_text_a_file_and_a_shipped_query(built: Path, tmp_path: Path) -> None:
    day = partitions(built)[-1]
    res = runner.invoke(
        app,
        [
            "sql",
            "SELECT count(*) AS n FROM joint_embeddings WHERE kind = getvariable('k')",
            "--out",
            str(built),
            "--param",
            "k=scenario",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["n"] > 0
    query = tmp_path / "mine.sql"
    query.write_text("SELECT DISTINCT as_of_date FROM joint_embeddings ORDER BY 1")
    res = runner.invoke(app, ["sql", str(query), "--out", str(built), "--format", "csv"])
    assert res.exit_code == 0 and str(day) in res.stdout
    res = runner.invoke(
        app,
        ["sql", "fragile", "--out", str(built), "--param", f"as_of={day}", "--param", "top_n=3"]
        + ["--format", "csv"],
    )
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 4  # header and three entities


def test_sql_errors_are_one_line_and_the_output_is_read_only(built: Path) -> None:
    for args in (
        ["SELEC 1"],
        ["DELETE FROM joint_embeddings"],
        ["missing.sql"],
        ["SELECT 1", "--param", "oops"],
    ):
        res = runner.invoke(app, ["sql", *args, "--out", str(built)])
        assert res.exit_code == 2, (args, res.stdout)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # A choice no format has is refused where the options are parsed, with the choices.
    res = runner.invoke(app, ["sql", "SELECT 1", "--format", "xml", "--out", str(built)])
    assert res.exit_code == 2 and "'xml' is not one of 'table', 'csv'" in res.stderr
    assert "Traceback" not in res.stderr
    still = runner.invoke(
        app, ["sql", "SELECT count(*) FROM joint_embeddings", "--out", str(built)]
    )
    assert still.exit_code == 0


def test_tables_never_cut_an_id(tmp_path: Path) -> None:
    from stabfrag.cli.common import print_frame

    long_id = "SCN_HY_SPREAD_WIDEN_2008_" + "X" * 6
    frame = pl.DataFrame(
        {
            "scenario_id": [long_id],
            "description": ["a long description " * 8],
            "shock_type": ["CREDIT_SPREAD"],
        }
    )
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_frame(frame, fmt="table")
    text = buffer.getvalue()
    assert long_id in text and "CREDIT_SPREAD" in text and "…" not in text


def test_validate_shows_and_writes_its_rejects(tmp_path: Path) -> None:
    from stabfrag.synth import generate, inject_defects

    path = tmp_path / "p.parquet"
    inject_defects(generate(entities=20, days=150, seed=2).prices, seed=2).write_parquet(path)
    out = tmp_path / "rejects.csv"
    res = runner.invoke(app, ["validate", "--prices", str(path), "--rejects-out", str(out)])
    summary = json.loads(runner.invoke(app, ["validate", "--prices", str(path), "--json"]).stdout)
    written = pl.read_csv(out)
    assert written.height == summary["rows_rejected"] + summary["entities_rejected"]
    assert set(written.columns) == {"entity_id", "date", "reason", "detail"}
    assert "first 10 of" in res.stdout and "nonfinite_close" in res.stdout
    bad = runner.invoke(app, ["validate", "--prices", str(path), "--rejects-out", "x.txt"])
    assert bad.exit_code == 2 and ".parquet or .csv" in bad.stderr


def test_the_run_summary_names_what_it_times(market_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["backfill", "--start", "2024-10-01", "--end", "2024-12-31", "--freq", "month"]
        + ["--prices", str(market_dir / "prices.parquet"), "--out", str(tmp_path), "--json"],
    )
    summary = json.loads(res.stdout)
    assert {"models", "write_parquet", "features", "episode_contexts"} <= set(summary["timings_s"])
    assert "load" not in summary["timings_s"]
    assert summary["entity_states_in"] == summary["states_out"] + summary["entity_states_rejected"]
    assert len(summary["as_of_dates"]) == 3


def test_every_command_ends_an_expected_failure_in_one_line(tmp_path: Path) -> None:
    """demo had no error guard of its own: its failures now end like every command's."""
    args = ["demo", "--out", str(tmp_path), "--entities", "20", "--days", "400"]
    res = runner.invoke(app, [*args, "--model", "joint-no-such-model"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("stabfrag: ") and "joint-no-such-model" in lines[0]
    )


def test_exit_codes_tell_a_scheduler_what_to_do(
    market_dir: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """0 done; 1 the run failed (a retry may pass); 2 bad usage; 3 done, rejects above
    the share."""
    from stabfrag.engine import loop
    from stabfrag.errors import RunError

    prices = str(market_dir / "prices.parquet")
    build = ["build", "--as-of", "2024-12-31", "--prices", prices, "--out", str(tmp_path / "o")]
    assert runner.invoke(app, build).exit_code == 0
    # 2: a flag's value the command cannot use, a file named that is not there.
    assert runner.invoke(app, [*build, "--weights", "stab=x"]).exit_code == 2
    missing = ["build", "--as-of", "2024-12-31", "--prices", str(tmp_path / "absent.parquet")]
    assert runner.invoke(app, missing).exit_code == 2
    assert runner.invoke(app, ["build", "--no-such-flag"]).exit_code == 2
    # 3: done, with more rejects than the share allows (one bad row, share 0).
    import polars as pl

    frame = pl.read_parquet(prices)
    last = frame.filter(pl.col("date") == pl.col("date").max()).head(1)
    bad = tmp_path / "bad.parquet"
    pl.concat([frame, last.with_columns(pl.lit(-1.0).alias("close"))]).write_parquet(bad)
    out3 = ["--prices", str(bad), "--out", str(tmp_path / "o3"), "--max-reject-share", "0"]
    res = runner.invoke(app, [*build[:3], *out3])
    assert res.exit_code == 3 and (tmp_path / "o3" / "stabfrag.duckdb").exists()

    # 1: the run failed (a task failed for good; a database that does not answer is
    # tested with PostgreSQL, a cluster that does not answer with Ray).
    def failed(*args: object, **kwargs: object) -> None:
        raise RunError("chunk 2024-12-31..2024-12-31, entity block 1 of 1 failed (lost)")

    monkeypatch.setattr(loop, "run", failed)
    res = runner.invoke(app, build)
    assert res.exit_code == 1 and res.stderr.startswith("stabfrag: chunk 2024-12-31")


def test_formats_print_rows_and_vectors(built: Path, tmp_path: Path) -> None:
    """Every --format prints the rows; CSV writes a vector as a JSON array; --help lists
    the choices."""
    sql = ["sql", "SELECT entity_id, vector FROM joint_embeddings WHERE kind = 'entity' LIMIT 2"]
    res = runner.invoke(app, [*sql, "--out", str(built), "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    rows = pl.read_csv(res.stdout.encode())
    vector = json.loads(rows["vector"][0])
    assert rows.height == 2 and len(vector) == 384
    assert abs(sum(v * v for v in vector) - 1) < 1e-5
    res = runner.invoke(app, [*sql, "--out", str(built), "--format", "ndjson"])
    assert [len(json.loads(line)["vector"]) for line in res.stdout.splitlines()] == [384, 384]
    table = runner.invoke(app, [*sql, "--out", str(built)])
    assert table.exit_code == 0 and "[384 values]" in table.stdout
    for command in (["sql"], ["query", "fragile"], ["scenarios", "list"], ["backfill"]):
        shown = runner.invoke(app, [*command, "--help"]).stdout
        assert "<table|csv|json|ndjson|parquet>" in shown or "<day|week|month>" in shown


def test_validate_prints_every_reject_in_a_format(market_dir: Path, tmp_path: Path) -> None:
    from stabfrag.synth import inject_defects

    path = tmp_path / "bad.parquet"
    inject_defects(pl.read_parquet(market_dir / "prices.parquet"), seed=3).write_parquet(path)
    args = ["validate", "--prices", str(path), "--max-reject-share", "1"]
    res = runner.invoke(app, [*args, "--format", "parquet"])
    assert res.exit_code == 0, res.stderr
    rejects = pl.read_parquet(res.stdout_bytes)
    assert rejects.height > 10 and {"entity_id", "reason"} <= set(rejects.columns)
    assert "rows_rejected:" in res.stderr  # the counts beside the rows
    assert runner.invoke(app, [*args, "--format", "csv", "--json"]).exit_code == 2


def test_verbose_and_quiet_set_what_stderr_says(market_dir: Path, tmp_path: Path) -> None:
    """Progress lines by default, each task's steps with -v, nothing but warnings with -q."""
    import logging

    from stabfrag import logs

    args = ["backfill", "--start", "2024-10-01", "--end", "2024-12-31"]
    args += ["--prices", str(market_dir / "prices.parquet"), "--chunk-days", "40"]
    try:
        default = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
        verbose = runner.invoke(app, ["-v", *args, "--out", str(tmp_path / "b")])
        quiet = runner.invoke(app, ["-q", *args, "--out", str(tmp_path / "c")])
    finally:
        logs.LOGGER.setLevel(logging.INFO)
    assert default.exit_code == verbose.exit_code == quiet.exit_code == 0
    assert "as-of dates" in default.stderr and "built and staged" not in default.stderr
    assert "built and staged" in verbose.stderr and "read " in verbose.stderr
    assert quiet.stderr == ""
