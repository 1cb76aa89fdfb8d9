"""Backfill: calendar rules, equivalence with build, resume after a real kill."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.asof import calendar
from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.features.registry import LOOKBACK_ROWS
from stabfrag.ingest import window
from stabfrag.sinks.blocks import BLOCKS
from stabfrag.sinks.dataset import MANIFEST, PART, partition_dir, partitions, read_table
from tests.conftest import kill_when

runner = CliRunner()


def test_month_and_week_are_last_trading_days(tmp_path: Path) -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(100)]
    days = [d for d in days if d.weekday() < 5 and d != dt.date(2024, 1, 31)]  # a holiday
    path = tmp_path / "p.parquet"
    pl.DataFrame({"entity_id": "A", "date": days, "close": 1.0}).write_parquet(path)
    months = calendar.as_of_dates(path, dt.date(2024, 1, 1), dt.date(2024, 3, 31), "month")
    assert months == [dt.date(2024, 1, 30), dt.date(2024, 2, 29), dt.date(2024, 3, 29)]
    weeks = calendar.as_of_dates(path, dt.date(2024, 1, 1), dt.date(2024, 1, 21), "week")
    assert weeks == [dt.date(2024, 1, 5), dt.date(2024, 1, 12), dt.date(2024, 1, 19)]
    all_days = calendar.as_of_dates(path, dt.date(2024, 1, 1), dt.date(2024, 1, 7), "day")
    assert all_days == [dt.date(2024, 1, d) for d in range(1, 6)]


def test_backfill_partitions_equal_build(market_dir: Path, tmp_path: Path) -> None:
    prices = market_dir / "prices.parquet"
    res = runner.invoke(
        app,
        [
            "backfill",
            "--start",
            "2024-01-01",
            "--end",
            "2024-12-31",
            "--freq",
            "month",
            "--prices",
            str(prices),
            "--out",
            str(tmp_path / "bf"),
            "--chunk-days",
            "60",
        ],
    )
    assert res.exit_code == 0, res.stderr
    dates = partitions(tmp_path / "bf")
    assert len(dates) == 12
    for d in (dates[0], dates[5], dates[-1]):
        single = tmp_path / f"b{d}"
        loop.run(BuildConfig(prices=prices, out=single), [d])
        a = read_table(single, "joint_embeddings", d)
        b = read_table(tmp_path / "bf", "joint_embeddings", d)
        assert a["vector"].to_numpy().tobytes() == b["vector"].to_numpy().tobytes()
        assert a.drop("vector").equals(b.drop("vector"))
        # Every column of the features table too (n_obs once counted the rows of the
        # chunk's read, so it changed with the chunking).
        assert read_table(single, "features", d).equals(read_table(tmp_path / "bf", "features", d))


def test_progress_lines_off_a_terminal(market_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "backfill",
            "--start",
            "2024-10-01",
            "--end",
            "2024-12-31",
            "--freq",
            "month",
            "--prices",
            str(market_dir / "prices.parquet"),
            "--out",
            str(tmp_path),
            "--chunk-days",
            "31",
        ],
    )
    assert res.exit_code == 0
    assert "3/3 as-of dates" in res.stderr and "states/s" in res.stderr


def _files(out: Path) -> dict[str, bytes]:
    """Every committed Parquet file and manifest of a dataset (the DuckDB file aside)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.name in (PART, MANIFEST)
    }


def _visible(out: Path, name: str) -> list[Path]:
    """The files called `name` a reader sees in a dataset being written: os.walk skips a
    folder the run removes mid-walk (a sealed block's staging), where rglob would raise,
    and staged blocks are not walked into (readers never look there)."""
    found = []
    for folder, subfolders, files in os.walk(out):
        subfolders[:] = [f for f in subfolders if f != BLOCKS]
        found += [Path(folder) / name] if name in files else []
    return found


def _check_visible_partitions_complete(out: Path) -> None:
    for part in _visible(out, PART):
        pl.read_parquet(part)  # a half-written file would not read
    for manifest in _visible(out, MANIFEST):
        d = dt.date.fromisoformat(manifest.parent.name.split("=")[1])
        for table in ("joint_embeddings", "features", "rejects", "scenarios"):
            assert (partition_dir(out, table, d) / PART).exists()


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_uninterrupted_dataset(
    market_dir: Path, tmp_path: Path
) -> None:
    args = [
        "backfill",
        "--start",
        "2024-01-01",
        "--end",
        "2024-12-31",
        "--freq",
        "week",
        "--prices",
        str(market_dir / "prices.parquet"),
        "--chunk-days",
        "14",
    ]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert runner.invoke(app, [*args, "--out", str(clean)]).exit_code == 0

    cmd = [sys.executable, "-m", "stabfrag", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ten_done() -> bool:
        _check_visible_partitions_complete(killed)
        return killed.exists() and len(_visible(killed, MANIFEST)) >= 10

    kill_when(proc, ten_done)
    partial = len(list(killed.rglob(MANIFEST)))
    total = len(partitions(clean))
    assert 0 < partial < total, (partial, total)
    _check_visible_partitions_complete(killed)

    res = runner.invoke(app, [*args, "--out", str(killed), "--resume", "--json"])
    assert res.exit_code == 0, res.stderr
    assert f'"partitions_skipped": {partial}' in res.stdout
    assert _files(killed) == _files(clean)
    assert list(killed.rglob(".*.tmp")) == []  # the killed run's temporary files are gone


def test_counts_do_not_depend_on_the_chunking(market, tmp_path: Path) -> None:
    """Look-back rows are read again by every chunk but counted once, with their rejects."""
    from stabfrag.synth import inject_defects

    path = tmp_path / "defects.parquet"
    inject_defects(market.prices, seed=5).write_parquet(path)
    dates = calendar.as_of_dates(path, dt.date(2023, 1, 1), dt.date(2024, 12, 31), "month")
    runs = {
        days: loop.run(
            BuildConfig(prices=path, out=tmp_path / f"c{days}", chunk_days=days), dates
        ).as_dict()
        for days in (40, 5000)  # a chunk per month or two, and one chunk
    }
    keys = ("rows_read", "rows_rejected", "row_rejects_by_reason", "range_dropped")
    assert {k: runs[40][k] for k in keys} == {k: runs[5000][k] for k in keys}
    # One chunk reads each row of its window once: its count is the window's row count.
    rows = window.read_window(
        path, first=dates[0], last=dates[-1], include_undated=True, min_rows=LOOKBACK_ROWS
    )
    assert runs[5000]["rows_read"] == rows.height
    assert runs[5000]["rows_rejected"] > 0 and runs[5000]["range_dropped"] > 0


def test_chunk_days_follow_the_memory_budget(market_dir: Path, tmp_path: Path) -> None:
    from stabfrag.engine.budget import chunk_days_for, parse_size
    from stabfrag.errors import ConfigError

    assert parse_size("4GB") == 4 << 30 and parse_size("512 mb") == 512 << 20
    assert parse_size("1.5GB") == 3 << 29
    assert parse_size("4GiB") == 4 << 30 and parse_size("512 MiB") == 512 << 20
    for bad in ("lots", "-1GB", "0MB", "4PB"):
        with pytest.raises(ConfigError, match="--memory"):
            parse_size(bad)
    prices = market_dir / "prices.parquet"
    daily = calendar.as_of_dates(prices, dt.date(2024, 1, 1), dt.date(2024, 12, 31), "day")
    monthly = calendar.as_of_dates(prices, dt.date(2022, 1, 1), dt.date(2024, 12, 31), "month")
    budgets = [parse_size(m) for m in ("450MB", "600MB", "1GB", "4GB")]
    traded = calendar.trading_days(prices)
    days = [chunk_days_for(traded, daily, m) for m in budgets]
    assert days[0] >= 1 and days == sorted(days) and days[-1] > days[1]  # more, more days
    # Less than one date needs is refused with the minimum, not run at a day a chunk.
    with pytest.raises(ConfigError, match=r"less than one date .* needs \(about 4\d\d\.\dMB\)"):
        chunk_days_for(traded, daily, parse_size("400MB"))
    with pytest.raises(ConfigError, match="more than any machine"):
        parse_size("999999TB")
    # A month-end run holds few states per day: the same budget spans more days.
    assert chunk_days_for(traded, monthly, budgets[1]) > days[1]

    base = ["backfill", "--start", "2024-10-01", "--end", "2024-12-31", "--prices", str(prices)]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--memory", "600MB", "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["chunk_days"] == chunk_days_for(
        traded,
        calendar.as_of_dates(prices, dt.date(2024, 10, 1), dt.date(2024, 12, 31), "month"),
        budgets[1],
    )
    args = [*base, "--out", str(tmp_path / "b"), "--memory", "600MB", "--chunk-days", "9"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["chunk_days"] == 9
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "c"), "--memory", "lots"])
    assert res.exit_code == 2 and res.stderr.startswith("stabfrag: --memory 'lots'")


def test_a_chunk_lets_go_of_its_vectors_before_the_next_one_starts(
    market_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition's tables are views of the chunk's vector array: if any partition outlived
    its chunk, the whole array would stay in memory through the next chunk."""
    import gc
    import weakref

    from stabfrag.engine import chunk as builder

    arrays: list[weakref.ref] = []
    alive_at_start: list[int] = []
    encode, build_chunk = builder.encode_states, builder.ChunkBuilder.build

    def encode_and_watch(*args, **kwargs):  # type: ignore[no-untyped-def]
        encoded = encode(*args, **kwargs)
        arrays.append(weakref.ref(encoded.z_stab))
        return encoded

    def count_then_build(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gc.collect()
        alive_at_start.append(sum(ref() is not None for ref in arrays))
        return build_chunk(self, *args, **kwargs)

    monkeypatch.setattr(builder, "encode_states", encode_and_watch)
    monkeypatch.setattr(builder.ChunkBuilder, "build", count_then_build)
    config = BuildConfig(prices=market_dir / "prices.parquet", out=tmp_path / "o", chunk_days=40)
    dates = calendar.as_of_dates(config.prices, dt.date(2024, 1, 1), dt.date(2024, 6, 30), "month")
    loop.run(config, dates)
    assert len(alive_at_start) > 2 and len(arrays) == len(alive_at_start)
    assert alive_at_start == [0] * len(alive_at_start)
