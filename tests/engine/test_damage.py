"""A manifest vouches for its files: their sizes and checksums. A damaged date is rebuilt
by --resume, reported by `stabfrag verify`, and named by readers in one line; the other
dates stay usable."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.sinks.dataset import partition_dir, partitions, read_manifest

runner = CliRunner()
START, END = "2024-09-01", "2024-12-31"


def _backfill(market_dir: Path, out: Path, *extra: str) -> dict:
    args = ["backfill", "--start", START, "--end", END, "--freq", "month", "--json"]
    res = runner.invoke(
        app, [*args, "--prices", str(market_dir / "prices.parquet"), "--out", str(out), *extra]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*.parquet"))
        if "/." not in str(p.relative_to(out))
    }


@pytest.fixture
def damaged(market_dir: Path, tmp_path: Path) -> tuple[Path, list[dt.date], dict[str, bytes]]:
    """A backfill with one date's vectors truncated and another's features deleted."""
    out = tmp_path / "out"
    _backfill(market_dir, out)
    clean = _files(out)
    dates = partitions(out)
    part = partition_dir(out, "joint_embeddings", dates[1]) / "part-0.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    (partition_dir(out, "features", dates[2]) / "part-0.parquet").unlink()
    return out, dates, clean


def test_the_manifest_records_each_file_size_and_checksum(built: Path) -> None:
    day = partitions(built)[-1]
    checks = read_manifest(built, day)["file_checks"]  # type: ignore[index]
    assert {"joint_embeddings", "features", "rejects", "scenarios"} == {
        name.split("/")[0] for name in checks
    }
    for name, check in checks.items():
        assert (built / name).stat().st_size == check["bytes"]
        assert len(check["sha256"]) == 64


def test_resume_rebuilds_a_damaged_date_and_says_so(market_dir: Path, damaged) -> None:  # type: ignore[no-untyped-def]
    out, dates, clean = damaged
    summary = _backfill(market_dir, out, "--resume")
    assert summary["partitions_written"] == 2 and summary["partitions_skipped"] == len(dates) - 2
    assert summary["partitions_damaged"] == [dates[1].isoformat(), dates[2].isoformat()]
    assert any("damaged" in w for w in summary["warnings"])
    assert _files(out) == clean


def test_resume_with_verify_checks_the_bytes(market_dir: Path, tmp_path: Path) -> None:
    """A flipped byte keeps a file's size: only the checksum (--verify) sees it."""
    out = tmp_path / "out"
    _backfill(market_dir, out)
    clean = _files(out)
    day = partitions(out)[0]
    part = partition_dir(out, "joint_embeddings", day) / "part-0.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    assert _backfill(market_dir, out, "--resume")["partitions_written"] == 0
    summary = _backfill(market_dir, out, "--resume", "--verify")
    assert summary["partitions_damaged"] == [day.isoformat()]
    assert _files(out) == clean


def test_verify_reports_every_damaged_partition(market_dir: Path, damaged) -> None:  # type: ignore[no-untyped-def]
    out, dates, _ = damaged
    res = runner.invoke(app, ["verify", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert f"as_of_date={dates[1]}/part-0.parquet" in res.stdout and "size" in res.stdout
    assert f"as_of_date={dates[2]}/part-0.parquet" in res.stdout and "missing" in res.stdout
    _backfill(market_dir, out, "--resume")
    res = runner.invoke(app, ["verify", "--out", str(out)])
    assert res.exit_code == 0 and f"{len(dates)} partitions intact" in res.stdout


def test_verify_reports_a_partition_no_manifest_vouches_for(
    market_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _backfill(market_dir, out)
    stray = partition_dir(out, "features", dt.date(2030, 1, 2))
    shutil.copytree(partition_dir(out, "features", partitions(out)[0]), stray)
    res = runner.invoke(app, ["verify", "--out", str(out)])
    assert (
        res.exit_code == 1 and "as_of_date=2030-01-02" in res.stdout and "no manifest" in res.stdout
    )


def test_readers_name_the_damaged_file_and_the_other_dates_work(damaged) -> None:  # type: ignore[no-untyped-def]
    from stabfrag import api
    from stabfrag.errors import StabfragError

    out, dates, _ = damaged
    data = api.open(out)
    assert data.fragile(dates[0], top_n=5).height == 5
    with pytest.raises(StabfragError, match=r"as_of_date=.*part-0.parquet.*verify"):
        data.fragile(dates[1], top_n=5)
    day = ["--out", str(out), "--as-of", dates[0].isoformat()]
    assert runner.invoke(app, ["query", "fragile", *day]).exit_code == 0
    query = f"SELECT count(*) AS n FROM joint_embeddings WHERE as_of_date = '{dates[0]}'"
    assert runner.invoke(app, ["sql", "--out", str(out), query]).exit_code == 0
    # What reads the damaged date (the report's history reads every date) says which file.
    for args in (
        ["query", "fragile", "--out", str(out), "--as-of", dates[1].isoformat()],
        ["report", *day, "--html", str(out.parent / "r.html")],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "Traceback" not in res.output, args
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert f"as_of_date={dates[1]}/part-0.parquet" in res.stderr and "verify" in res.stderr


def test_a_python_reader_names_the_damaged_file(damaged) -> None:  # type: ignore[no-untyped-def]
    from stabfrag.errors import InputError
    from stabfrag.sinks.dataset import read_table

    out, dates, _ = damaged
    assert read_table(out, "joint_embeddings", dates[0]).height > 0
    with pytest.raises(InputError, match=rf"as_of_date={dates[1]}/part-0.parquet: damaged \(size"):
        read_table(out, "joint_embeddings", dates[1])
    with pytest.raises(
        InputError, match=rf"as_of_date={dates[2]}/part-0.parquet: damaged \(missing"
    ):
        read_table(out, "features", dates[2])


def test_resume_loads_the_dates_the_database_lacks(
    market_dir: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    """Parquet is committed before the database load: a load that failed (or a run killed
    between the two) once left the table short, and --resume skipped those dates."""
    import psycopg
    from psycopg import sql

    out, table = tmp_path / "out", f"{pg_schema}.joint_embeddings"
    _backfill(market_dir, out)  # the Parquet only: as if the database load never happened
    dates = partitions(out)
    pg = ["--pg-dsn", pg_dsn, "--pg-table", table]
    assert runner.invoke(app, ["db", "init", *pg]).exit_code == 0
    summary = _backfill(market_dir, out, "--resume", *pg)
    assert summary["partitions_written"] == 0 and summary["partitions_skipped"] == len(dates)
    assert summary["database"]["dates_loaded_from_parquet"] == len(dates)
    query = sql.SQL("SELECT count(DISTINCT as_of_date), count(*) FROM {}").format(
        sql.Identifier(pg_schema, "joint_embeddings")
    )
    with psycopg.connect(pg_dsn) as conn:
        held, rows = conn.execute(query).fetchone()  # type: ignore[misc]
    counts = [read_manifest(out, d)["counts"] for d in dates]  # type: ignore[index]
    assert held == len(dates) and rows == sum(c["states"] + c["scenarios"] for c in counts)
    again = _backfill(market_dir, out, "--resume", *pg)
    assert again["database"]["dates_loaded_from_parquet"] == 0
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(query).fetchone() == (held, rows)  # nothing doubled


def test_a_failed_run_leaves_views_over_what_it_committed(market_dir: Path, tmp_path: Path) -> None:
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop
    from stabfrag.errors import StabfragError

    out = tmp_path / "out"
    dates = [dt.date(2024, 9, 30), dt.date(2024, 10, 31), dt.date(2024, 11, 29)]

    def fail_late(task):  # type: ignore[no-untyped-def]
        if task.dates[0] == dates[-1]:
            raise StabfragError("a task failed")

    config = BuildConfig(prices=market_dir / "prices.parquet", out=out, chunk_days=20)
    with pytest.raises(StabfragError):
        loop.run(config, dates, before_task=fail_late)
    assert partitions(out) == dates[:2]
    res = runner.invoke(app, ["sql", "--out", str(out), "SELECT DISTINCT as_of_date FROM features"])
    assert res.exit_code == 0, res.output
    assert str(dates[0]) in res.stdout and str(dates[1]) in res.stdout
