"""Hostile use, second round: what used to end in a traceback or a wrong result with exit 0
now ends in one line (or a warning) that says what to do."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.sinks.dataset import read_table

runner = CliRunner()
AS_OF = "2024-12-31"


def _one_line(res, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    """The run failed with `code` and said why in one line, with no traceback."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def _build(market_dir: Path, out: Path, *extra: str) -> object:
    args = ["build", "--as-of", AS_OF, "--prices", str(market_dir / "prices.parquet")]
    return runner.invoke(app, [*args, "--out", str(out), *extra])


def test_huge_weights_give_the_vectors_of_their_ratio(market_dir: Path, tmp_path: Path) -> None:
    """stab=1e308,scen=1e308 once overflowed to all-zero vectors and fragility 0, exit 0."""
    huge = _build(market_dir, tmp_path / "huge", "--weights", "stab=1e308,scen=1e308")
    assert huge.exit_code == 0, huge.output
    ones = _build(market_dir, tmp_path / "ones", "--weights", "stab=1,scen=1")
    assert ones.exit_code == 0, ones.output
    day = pl.Series([AS_OF]).str.to_date()[0]
    a = read_table(tmp_path / "huge", "joint_embeddings", day)
    b = read_table(tmp_path / "ones", "joint_embeddings", day)
    vectors = np.stack(a["vector"].to_numpy()).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert a["vector"].equals(b["vector"]) and a["fragility"].equals(b["fragility"])


def test_a_partition_of_zero_vectors_never_reaches_a_sink() -> None:
    """The sink check refuses vectors that are not of unit length (zero, or overflowed)."""
    from stabfrag.errors import SinkError
    from stabfrag.sinks.base import check_tables

    frame = pl.DataFrame(
        {
            "as_of_date": pl.Series([AS_OF, AS_OF]).str.to_date(),
            "vector": [np.ones(4, dtype=np.float32) / 2, np.zeros(4, dtype=np.float32)],
        }
    )
    with pytest.raises(SinkError, match="unit length"):
        check_tables({"joint_embeddings": frame})


def test_a_market_not_in_the_input_is_one_line(market_dir: Path, tmp_path: Path) -> None:
    """A mistyped --market once gave every state no context, exit 0 and no warning."""
    line = _one_line(_build(market_dir, tmp_path / "o", "--market", "NOPE"))
    assert "--market NOPE" in line and "no prices" in line


def test_a_market_missing_on_some_dates_is_a_warning_with_the_count(
    market_dir: Path, tmp_path: Path
) -> None:
    import json

    prices = pl.read_parquet(market_dir / "prices.parquet")
    reference = prices["entity_id"].sort()[0]
    young = prices.filter(
        (pl.col("entity_id") != reference) | (pl.col("date") <= pl.date(2024, 6, 28))
    )
    path = tmp_path / "prices.parquet"
    young.write_parquet(path)
    args = ["backfill", "--start", "2024-05-01", "--end", AS_OF, "--freq", "month"]
    res = runner.invoke(
        app,
        [*args, "--prices", str(path), "--out", str(tmp_path / "o")]
        + ["--market", reference, "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    missing = summary["states_without_context"]
    assert missing > 0
    assert any(f"--market {reference}" in w and f"{missing:,}" in w for w in summary["warnings"])


@pytest.mark.parametrize("share", ["nan", "-1", "1.5", "inf"])
def test_the_reject_share_is_a_share(market_dir: Path, tmp_path: Path, share: str) -> None:
    """nan once turned the gate off and -1 always failed it. (A value an option refuses
    gets the usage error every option's type check gives.)"""
    res = _build(market_dir, tmp_path / "o", "--max-reject-share", share)
    assert res.exit_code == 2 and "Traceback" not in res.output  # type: ignore[attr-defined]
    assert "'--max-reject-share'" in res.stderr and "between 0 and 1" in res.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "o").exists()


def test_too_many_rejects_says_the_share_and_the_limit(market_dir: Path, tmp_path: Path) -> None:
    prices = pl.read_parquet(market_dir / "prices.parquet")
    last = prices.filter(pl.col("date") == pl.col("date").max()).head(1)
    bad = tmp_path / "bad.parquet"  # one row more: a negative close on the last date
    pl.concat([prices, last.with_columns(pl.lit(-1.0).alias("close"))]).write_parquet(bad)
    args = ["build", "--as-of", AS_OF, "--prices", str(bad), "--out", str(tmp_path / "b")]
    res = runner.invoke(app, [*args, "--max-reject-share", "0"])
    assert res.exit_code == 3
    last = res.stderr.strip().splitlines()[-1]
    assert "rejected" in last and "--max-reject-share 0" in last and "%" in last


def test_an_out_under_a_file_is_one_line(market_dir: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    under = str(afile / "x")
    prices = str(market_dir / "prices.parquet")
    for args in (
        ["build", "--as-of", AS_OF, "--prices", prices, "--out", under],
        ["backfill", "--start", "2024-11-01", "--end", AS_OF, "--prices", prices, "--out", under],
        ["generate", "--out", under, "--entities", "20", "--days", "600"],
        ["demo", "--out", under],
    ):
        line = _one_line(runner.invoke(app, args))
        assert "--out" in line, (args, line)


def test_generate_refuses_a_file_for_out_and_a_negative_seed(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args in (
        ["generate", "--out", str(afile), "--entities", "20", "--days", "600"],
        ["demo", "--out", str(afile)],
    ):
        assert "--out" in _one_line(runner.invoke(app, args))
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "g"), "--seed", "-1"])
    assert res.exit_code == 2 and "'--seed'" in res.stderr and "Traceback" not in res.output


def test_a_report_into_a_folder_is_one_line_and_leaves_nothing(built: Path, tmp_path: Path) -> None:
    """--html naming a folder once ended in a traceback and left <folder>.png behind."""
    folder = tmp_path / "pages"
    folder.mkdir()
    line = _one_line(runner.invoke(app, ["report", "--out", str(built), "--html", str(folder)]))
    assert "--html" in line and "folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]
    assert not any(folder.iterdir())


def test_a_scenario_file_that_is_not_utf8_is_named(market_dir: Path, tmp_path: Path) -> None:
    import shutil

    from stabfrag.scenarios.library import default_library

    scenarios = tmp_path / "scenarios"
    shutil.copytree(default_library(), scenarios)
    (scenarios / "latin1.toml").write_bytes('description = "Z\xfcrich"\n'.encode("latin-1"))
    line = _one_line(_build(market_dir, tmp_path / "o", "--scenarios", str(scenarios)))
    assert "latin1.toml" in line and "UTF-8" in line


def test_long_fundamentals_without_a_value_column_are_one_line(tmp_path: Path) -> None:
    from stabfrag.errors import InputError
    from stabfrag.profiles.fundamentals import read_fundamentals

    path = tmp_path / "fundamentals.csv"
    path.write_text("entity_id,date,field\nA,2024-01-02,leverage\n")
    with pytest.raises(InputError, match="value"):
        read_fundamentals(path, known_until=dt.date(2024, 12, 31))


def test_sql_csv_writes_the_vector_column(built: Path) -> None:
    """(Fixed before this round: kept as a guard.) The vector comes out as a JSON list."""
    res = runner.invoke(
        app,
        [
            "sql",
            "--out",
            str(built),
            "SELECT vector FROM joint_embeddings LIMIT 2",
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = res.stdout.strip().splitlines()
    assert rows[0] == "vector" and rows[1].startswith('"[') and len(rows) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{dir}/copied.csv'",
        "EXPORT DATABASE '{dir}/exported'",
        "INSTALL json",
        "LOAD json",
        "ATTACH '{dir}/other.duckdb' AS other",
    ],
)
def test_sql_is_read_only_and_offline(built: Path, tmp_path: Path, statement: str) -> None:
    """COPY ... TO once wrote a file; INSTALL tried the network."""
    text = statement.format(dir=tmp_path)
    line = _one_line(runner.invoke(app, ["sql", "--out", str(built), text]))
    assert "read-only" in line
    assert not any(tmp_path.iterdir())


def test_sql_tables_stop_at_a_hundred_rows(built: Path) -> None:
    res = runner.invoke(app, ["sql", "--out", str(built), "SELECT * FROM range(250)"])
    assert res.exit_code == 0, res.output
    assert "150 more rows; use --format csv or LIMIT" in res.stdout
    assert " 99 " in res.stdout and " 100 " not in res.stdout
    csv = runner.invoke(
        app, ["sql", "--out", str(built), "SELECT * FROM range(250)", "--format", "csv"]
    )
    assert len(csv.stdout.strip().splitlines()) == 251  # the header and every row


def test_a_quoted_table_name_makes_index_names_without_quotes() -> None:
    from stabfrag.sinks.postgres import entity_index_ident, index_ident

    for make in (index_ident, entity_index_ident):
        quoted = make('app."Risk.Vectors"').as_string(None)  # one identifier, quoted once
        assert quoted.startswith('"Risk.Vectors_') and quoted.count('"') == 2, quoted
        plain = make("app.joint_embeddings").as_string(None)
        assert plain.startswith('"joint_embeddings_') and plain.count('"') == 2, plain


def test_a_csv_midnight_timestamp_is_a_date_as_in_parquet(tmp_path: Path) -> None:
    """2023-06-21T00:00:00 in a CSV was bad_date, though Parquet midnights are dates."""
    from stabfrag.ingest.prices import read_prices, validate

    path = tmp_path / "prices.csv"
    path.write_text(
        "entity_id,date,close,volume\n"
        "A,2023-06-21T00:00:00,10,100\n"
        "A,2023-06-22 00:00:00,11,100\n"
        "A,2023-06-23T00:00:00Z,12,100\n"
        "A,2023-06-26,13,100\n"
        "A,2023-06-27T13:30:00,14,100\n"
    )
    checked = validate(read_prices(path), min_prices=0)
    assert checked.prices["date"].cast(pl.String).to_list() == [
        "2023-06-21",
        "2023-06-22",
        "2023-06-23",
        "2023-06-26",
    ]
    assert checked.rejects["reason"].to_list() == ["bad_date"]  # a time of day is not a date


def _hold_lock(out: Path, seconds: float) -> object:
    """Another process that holds the output folder's writer lock for `seconds`."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, time; from pathlib import Path; from stabfrag.atomic import folder_lock\n"
        "with folder_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    time.sleep(0.05)
    return proc


def test_a_second_writer_is_refused_naming_the_first(market_dir: Path, tmp_path: Path) -> None:
    """Two runs into one folder once deleted each other's temporary files."""
    out = tmp_path / "o"
    holder = _hold_lock(out, 30)
    try:
        line = _one_line(_build(market_dir, out), code=1)
        assert f"process {holder.pid}" in line and "--wait" in line  # type: ignore[attr-defined]
        assert not (out / "joint_embeddings").exists()
    finally:
        holder.kill()  # type: ignore[attr-defined]
        holder.communicate()  # type: ignore[attr-defined]
    # The lock died with its process: the next run goes ahead.
    assert _build(market_dir, out).exit_code == 0  # type: ignore[attr-defined]


def test_wait_takes_its_turn(market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    holder = _hold_lock(out, 1.5)
    res = _build(market_dir, out, "--wait")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    holder.communicate()  # type: ignore[attr-defined]
    assert holder.returncode == 0  # type: ignore[attr-defined]  # it ended: the run waited


def test_a_folder_holds_one_model_unless_asked(market_dir: Path, tmp_path: Path) -> None:
    """v1 on one date and the default model the next once made fragility jump unseen."""
    from stabfrag import api

    out = tmp_path / "o"
    prices = str(market_dir / "prices.parquet")
    first = ["build", "--as-of", "2024-11-29", "--prices", prices, "--out", str(out)]
    assert runner.invoke(app, [*first, "--model", "joint-stab-fragility-v1"]).exit_code == 0
    line = _one_line(_build(market_dir, out))  # the default model, into v1's folder
    assert "joint-stab-fragility-v1" in line and "--allow-mixed-models" in line
    assert _build(market_dir, out, "--allow-mixed-models").exit_code == 0  # type: ignore[attr-defined]
    data = api.open(out)
    entity = data.fragile(AS_OF, top_n=1)["entity_id"][0]
    history = data.history(entity)
    assert history["model_id"].to_list() == ["joint-stab-fragility-v1", "joint-stab-fragility-v4"]
    args = ["query", "trajectory", "--out", str(out), "--entity", entity]
    res = runner.invoke(app, [*args, "--scenario", "SCN_EQ_CRASH_HIGH"])
    assert res.exit_code == 0 and "joint-stab-fragility-v1" in res.stdout, res.output
    # One model: no model column to read past.
    single = tmp_path / "single"
    assert _build(market_dir, single).exit_code == 0  # type: ignore[attr-defined]
    assert "model_id" not in api.open(single).history(entity).columns


def test_evaluate_refuses_prices_the_build_did_not_read(market_dir: Path, tmp_path: Path) -> None:
    """Prices of another market once moved the baseline AUC from 0.353 to 0.493, exit 0."""
    from stabfrag.synth import generate, write_market

    out = tmp_path / "o"
    assert _build(market_dir, out).exit_code == 0  # type: ignore[attr-defined]
    other = write_market(generate(40, 600, 99), tmp_path / "other")["prices"]
    args = ["evaluate", "--out", str(out), "--labels", str(market_dir / "labels.csv")]
    line = _one_line(runner.invoke(app, [*args, "--prices", str(other)]))
    assert "--prices" in line and "not the prices file this build read" in line
    from stabfrag.analysis.evaluate import check_prices

    check_prices(out, market_dir / "prices.parquet")  # the build's own prices pass


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("vl_convert"), reason="needs the [plot] extra"
)
def test_a_state_without_fragility_is_grey_on_the_map_not_zero(built: Path) -> None:
    """With no HIGH scenario the PNG once coloured null fragility as 0.000 (the page said
    n/a). Rendered: the null states are drawn in the grey of 'no fragility'."""
    from stabfrag.analysis import render
    from stabfrag.analysis.charts import NO_FRAGILITY, map_spec
    from stabfrag.analysis.report import map_points

    points, share = map_points(built, partitions_of(built)[-1])
    gone = points.with_columns(pl.lit(None, pl.Float64).alias("fragility"))
    svg = render.svg(map_spec(gone, share, partitions_of(built)[-1]))
    assert NO_FRAGILITY.lower() in svg.lower()
    # With fragility, no point is grey.
    assert (
        NO_FRAGILITY.lower() not in render.svg(map_spec(points, share, dt.date(2024, 1, 1))).lower()
    )


def partitions_of(out: Path) -> list[dt.date]:
    from stabfrag.sinks.dataset import partitions

    return partitions(out)


def test_a_duplicate_names_the_row_kept_and_how_rows_count(tmp_path: Path) -> None:
    from stabfrag.ingest.prices import read_prices, validate

    path = tmp_path / "prices.csv"
    path.write_text(
        "entity_id,date,close,volume\n"
        "A,2023-06-21,10,100\n"
        "A,2023-06-22,11,100\n"
        "A,2023-06-21,12,100\n"
    )
    rejects = validate(read_prices(path), min_prices=0).rejects
    (detail,) = rejects.filter(pl.col("reason") == "duplicate")["detail"].to_list()
    assert "data row 1, which is kept" in detail and "this is data row 3" in detail
    assert "count from 1" in detail


def test_a_dsn_with_an_unknown_option_names_the_option_not_the_password() -> None:
    line = _one_line(
        runner.invoke(
            app, ["db", "init", "--pg-dsn", "postgresql://root:S3cr3t@127.0.0.1:1/db?bogus_opt=1"]
        )
    )
    assert "bogus_opt" in line and "S3cr3t" not in line


def test_load_says_when_start_is_after_end(built: Path) -> None:
    dsn = "postgresql://root@127.0.0.1:1/db"
    args = ["load", "--out", str(built), "--pg-dsn", dsn, "--start", "2024-12-31"]
    line = _one_line(runner.invoke(app, [*args, "--end", "2024-01-01"]))
    assert "--start" in line and "after --end" in line


def test_labels_naming_scenarios_the_library_lacks_say_which(
    built: Path, market_dir: Path, tmp_path: Path
) -> None:
    from stabfrag.analysis.evaluate import evaluate

    labels = tmp_path / "labels.csv"
    frame = pl.read_csv(market_dir / "labels.csv")
    frame.with_columns(
        pl.when(pl.col("label") == "stress").then(pl.lit("SCN_NOPE")).alias("scenario_id")
    ).write_csv(labels)
    result = evaluate(built, labels)
    assert any("SCN_NOPE" in w for w in result["warnings"]), result.get("warnings")
    res = runner.invoke(app, ["evaluate", "--out", str(built), "--labels", str(labels)])
    assert res.exit_code == 0 and "SCN_NOPE" in res.output


def test_a_corrupt_file_in_a_prices_folder_is_named(market_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "prices"
    folder.mkdir()
    (folder / "a.parquet").write_bytes((market_dir / "prices.parquet").read_bytes())
    (folder / "b.parquet").write_bytes((market_dir / "prices.parquet").read_bytes()[:500])
    args = ["build", "--as-of", AS_OF, "--prices", str(folder), "--out", str(tmp_path / "o")]
    line = _one_line(runner.invoke(app, args))
    assert "b.parquet" in line


def test_load_says_how_many_dates_it_left_for_want_of_a_manifest(
    built: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(built, out)
    from stabfrag.sinks.dataset import manifest_path, partitions

    manifest_path(out, partitions(out)[0]).unlink()
    table = ["--pg-dsn", pg_dsn, "--pg-table", f"{pg_schema}.joint_embeddings"]
    assert runner.invoke(app, ["db", "init", *table]).exit_code == 0
    res = runner.invoke(app, ["load", "--out", str(out), *table, "--json"])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads(res.stdout)["partitions_without_manifest"] == 1


def test_a_build_summary_reconciles_its_rows_alone(market_dir: Path, tmp_path: Path) -> None:
    """rows_read = rows_kept + rows_rejected + rows_of_rejected_entities, from the build's
    own summary (once only validate could say)."""
    import json

    from stabfrag.synth import inject_defects

    bad = tmp_path / "bad.parquet"
    inject_defects(pl.read_parquet(market_dir / "prices.parquet"), seed=3).write_parquet(bad)
    args = ["backfill", "--start", "2024-06-01", "--end", AS_OF, "--prices", str(bad)]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code in (0, 3), res.output
    s = json.loads(res.stdout)
    assert s["rows_rejected"] > 0 and s["rows_of_rejected_entities"] > 0
    assert s["rows_read"] == s["rows_kept"] + s["rows_rejected"] + s["rows_of_rejected_entities"]


def test_a_run_that_ends_with_no_state_says_so(market_dir: Path, tmp_path: Path) -> None:
    import json

    first = pl.read_parquet(market_dir / "prices.parquet")["date"].min()
    early = (first + dt.timedelta(days=20)).isoformat()  # type: ignore[operator]
    res = runner.invoke(
        app,
        ["build", "--as-of", early, "--prices", str(market_dir / "prices.parquet")]
        + ["--out", str(tmp_path / "o"), "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["states_out"] == 0
    assert any("no entity state" in w for w in summary["warnings"]), summary["warnings"]


def test_the_demo_says_why_entities_have_no_state_and_what_to_run_next(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--entities", "200"])
    assert res.exit_code == 0, res.output
    assert "entities without a state (stale=1; see rejects)" in res.stdout
    for command in ("stabfrag query", "stabfrag report", "stabfrag sql"):
        assert command in res.stdout
    # Beside the calm last date, a date inside the market's deepest crash, which the
    # space names a crash: when and which, on the first run a user makes.
    _, crash = res.stdout.split("inside the market's deepest crash", 1)
    assert "EQUITY_CRASH" in crash.split("next:")[0]
