"""The Ray executor: the same partitions and counts as a local backfill, from tasks that
may die, from a driver that may be killed. Needs the ray extra; `pytest -m "not ray"`
skips these on a machine without it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.asof.calendar import as_of_dates
from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.engine.chunk import Chunk
from stabfrag.engine.tasks import chunks
from stabfrag.errors import RunError
from stabfrag.sinks.dataset import MANIFEST, partitions, read_table
from tests.conftest import kill_when

pytestmark = pytest.mark.ray
runner = CliRunner()
TABLES = ("joint_embeddings", "features", "rejects", "scenarios")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray of 2 CPUs for the module: the executor joins it rather than starting
    its own (Ray's start-up is most of a small run)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    # The faults this module plugs in travel to the workers by value, not by import.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def prices(tmp_path_factory: pytest.TempPathFactory, market: Any) -> Path:
    """The test market with defects (duplicates, bad rows, bad ticks) to reject."""
    from stabfrag.synth import inject_defects

    path = tmp_path_factory.mktemp("ray") / "prices.parquet"
    inject_defects(market.prices, seed=5).write_parquet(path)
    REFERENCE[path] = market.entities.filter(pl.col("entity_type") == "MARKET")["entity_id"][0]
    return path


# Each test prices file's market entity: every run names it as the context reference, so
# the default (context) model can be split by entity.
REFERENCE: dict[Path, str] = {}


def _dates(prices: Path, freq: str) -> list[dt.date]:
    start = dt.date(2024, 10, 1) if freq == "day" else dt.date(2023, 1, 1)
    return as_of_dates(prices, start, dt.date(2024, 12, 31), freq)


def _run(prices: Path, out: Path, dates: list[dt.date], **kw: Any) -> dict[str, Any]:
    before_task = kw.pop("before_task", None)
    kw.setdefault("market", REFERENCE[prices])
    config = BuildConfig(prices=prices, out=out, chunk_days=kw.pop("chunk_days", 45), **kw)
    summary = loop.run(config, dates, before_task=before_task).as_dict()
    return {k: v for k, v in summary.items() if k not in ("timings_s", "out")}


def _files(out: Path) -> dict[str, bytes]:
    """Every Parquet file and manifest of a dataset (the DuckDB file aside)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".parquet", ".json")
    }


def _rows(out: Path, table: str, day: dt.date) -> pl.DataFrame:
    frame = read_table(out, table, day)
    return frame if table != "rejects" else frame.sort(frame.columns, nulls_last=True)


@pytest.mark.parametrize("freq", ["month", "day"])
def test_one_block_writes_the_local_bytes(
    ray_local: None, prices: Path, tmp_path: Path, freq: str
) -> None:
    dates = _dates(prices, freq)
    local = _run(prices, tmp_path / "local", dates)
    remote = _run(prices, tmp_path / "ray", dates, executor="ray")
    assert remote == local
    assert local["rows_rejected"] > 0 and local["states_out"] > 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


@pytest.mark.parametrize("freq", ["month", "day"])
def test_three_blocks_hold_the_local_rows(
    ray_local: None, prices: Path, tmp_path: Path, freq: str
) -> None:
    dates = _dates(prices, freq)
    local = _run(prices, tmp_path / "local", dates)
    remote = _run(prices, tmp_path / "ray", dates, executor="ray", entity_blocks=3)
    assert remote == local
    assert partitions(tmp_path / "ray") == partitions(tmp_path / "local") == dates
    for day in dates:
        for table in TABLES:
            assert _rows(tmp_path / "ray", table, day).equals(_rows(tmp_path / "local", table, day))
        made = json.loads(
            (tmp_path / "ray" / "joint_embeddings" / f"as_of_date={day}" / MANIFEST).read_text()
        )
        assert made.pop("entity_blocks") == 3
        local_manifest = json.loads(
            (tmp_path / "local" / "joint_embeddings" / f"as_of_date={day}" / MANIFEST).read_text()
        )
        # Each vouches for its own files: three parts of a table against one.
        checks, local_checks = made.pop("file_checks"), local_manifest.pop("file_checks")
        assert made == local_manifest
        assert all((tmp_path / "ray" / f).stat().st_size == c["bytes"] for f, c in checks.items())
        assert len(checks) == 3 * 3 + 1 and len(local_checks) == 4  # (one scenarios file)
    folder = tmp_path / "ray" / "joint_embeddings" / f"as_of_date={dates[-1]}"
    assert sorted(p.name for p in folder.glob("part-*")) == [f"part-{b}.parquet" for b in range(3)]
    # The scenario table is written once per date, not once per block.
    assert len(list((tmp_path / "ray" / "scenarios").rglob("*.parquet"))) == len(dates)
    # A second run writes the same bytes (a task run twice writes what it wrote).
    _run(prices, tmp_path / "again", dates, executor="ray", entity_blocks=3)
    assert _files(tmp_path / "again") == _files(tmp_path / "ray")


@dataclass(frozen=True)
class LoseWorker:
    """The fault the tests plug in: the worker of the task whose chunk starts on `day`, in
    entity block `block`, dies mid-task on its first `times` attempts (counted by files in
    `marks`), as a lost node would."""

    day: dt.date
    block: int
    times: int
    marks: Path

    def __call__(self, task: Chunk) -> None:
        if task.dates[0] != self.day or task.block.index != self.block:
            return
        self.marks.mkdir(parents=True, exist_ok=True)
        done = len(list(self.marks.glob("attempt-*")))
        if done < self.times:
            (self.marks / f"attempt-{done}").touch()
            os._exit(1)


def test_a_lost_worker_is_retried_and_changes_nothing(
    ray_local: None, prices: Path, tmp_path: Path
) -> None:
    dates = _dates(prices, "month")
    local = _run(prices, tmp_path / "local", dates, chunk_days=100)
    marks = tmp_path / "marks"
    second = list(chunks(dates, 100))[1]
    lose = LoseWorker(second[0], 1, 1, marks)
    remote = _run(
        prices,
        tmp_path / "ray",
        dates,
        executor="ray",
        entity_blocks=2,
        chunk_days=100,
        before_task=lose,
    )
    assert len(list(marks.iterdir())) == 1  # the worker died once, mid-task
    assert remote == local
    for day in dates:
        assert _rows(tmp_path / "ray", "features", day).equals(
            _rows(tmp_path / "local", "features", day)
        )


def test_a_task_that_always_fails_names_itself_and_seals_none_of_its_dates(
    ray_local: None, prices: Path, tmp_path: Path
) -> None:
    dates = _dates(prices, "month")
    out = tmp_path / "ray"
    second = list(chunks(dates, 100))[1]
    lose = LoseWorker(second[0], 0, 99, tmp_path / "marks")
    with pytest.raises(RunError) as failed:
        _run(prices, out, dates, executor="ray", entity_blocks=2, chunk_days=100, before_task=lose)
    message = str(failed.value)
    assert message.startswith(f"chunk {second[0]}..{second[-1]}, entity block 1 of 2 failed")
    assert "\n" not in message and "--resume" in message
    assert len(list((tmp_path / "marks").iterdir())) == 3  # tried 1 + 2 retries
    assert not set(second) & set(partitions(out))


def _cli(dates: list[dt.date], out: Path, *, chunk_days: int, freq: str = "week") -> list[str]:
    return [
        sys.executable,
        "-m",
        "stabfrag",
        "backfill",
        "--start",
        dates[0].isoformat(),
        "--end",
        dates[-1].isoformat(),
        "--freq",
        freq,
        "--out",
        str(out),
        "--chunk-days",
        str(chunk_days),
    ]


def _quiet(folder: Path, *, settle: float = 1.0, limit: float = 60.0) -> None:
    """Wait until no file of `folder` changes for `settle` seconds: a task of the killed
    driver can still be finishing in a worker of the cluster (Ray ends a dead driver's
    tasks soon, not at once), and what it writes is not what the test measures."""
    import time

    def state() -> dict[Path, int]:
        seen = {}
        for p in folder.rglob("*"):
            try:
                seen[p] = p.stat().st_mtime_ns
            except FileNotFoundError:  # renamed while listed: not quiet yet
                seen[p] = -1
        return seen

    deadline, last = time.monotonic() + limit, state()
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = state()
        if now == last:
            return
        last = now


def test_resume_after_killing_the_driver_does_nothing_twice(
    ray_local: None, prices: Path, tmp_path: Path
) -> None:
    dates = as_of_dates(prices, dt.date(2024, 1, 1), dt.date(2024, 12, 31), "week")
    args = ["--prices", str(prices), "--executor", "ray", "--entity-blocks", "2"]
    args += ["--market", REFERENCE[prices]]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*_cli(dates, killed, chunk_days=21), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the driver and the Ray it started, killed together
    )
    kill_when(proc, lambda: len(partitions(killed)) >= 8, group=True)
    _quiet(killed)
    sealed = partitions(killed)
    assert 0 < len(sealed) < len(dates)
    before = {p: p.stat().st_mtime_ns for p in killed.rglob("*.parquet")}
    staged: dict[Path, int] = {}  # staged, not sealed: the resume must seal them, not build
    for m in killed.rglob("_manifest-*.json"):
        files = [killed / rel for rel in json.loads(m.read_text())["files"]]
        # (A block a seal had begun to move when the driver died lacks some of its files
        # and is rightly built again.)
        if all(f in before for f in files):
            staged.update({f: before[f] for f in files})

    cmd = [*_cli(dates, killed, chunk_days=21)[3:], *args, "--resume", "--json"]
    res = runner.invoke(app, cmd)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["partitions_skipped"] == len(sealed)
    sealed_folders = {f"as_of_date={d}" for d in sealed}
    for path, mtime in before.items():  # nothing sealed was written again
        if path.parent.name in sealed_folders:
            assert path.stat().st_mtime_ns == mtime, path
    for path, mtime in staged.items():  # staged blocks moved into place, not rebuilt
        final = path.parent.parent / path.name
        assert final.stat().st_mtime_ns == mtime, final

    clean = tmp_path / "clean"
    _run(prices, clean, dates, chunk_days=21)
    for day in dates:
        for table in TABLES:
            got, want = _rows(killed, table, day), _rows(clean, table, day)
            assert got.equals(want), (table, day)
    assert not list(killed.rglob(".blocks"))


def test_block_layout_refusals(prices: Path, tmp_path: Path) -> None:
    """--entity-blocks needs the Ray executor; PostgreSQL is loaded after, not by tasks."""
    base = ["backfill", "--start", "2024-11-01", "--end", "2024-12-31", "--prices", str(prices)]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--entity-blocks", "2"])
    assert res.exit_code == 2 and res.stderr == "stabfrag: --entity-blocks needs --executor ray\n"
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--executor", "spark"])
    assert res.exit_code == 2 and "'spark' is not one of 'local', 'ray'" in res.stderr


@pytest.mark.parametrize(
    "model", ["joint-stab-fragility-v2", "joint-stab-fragility-v3", "joint-stab-fragility-v4"]
)
@pytest.mark.parametrize("named", [True, False])
def test_a_context_model_splits_by_entity(
    ray_local: None, prices: Path, tmp_path: Path, model: str, named: bool
) -> None:
    """Each state sits beside its market: a named one (each block reads its states apart)
    or, with none named, the median of every entity of the date (a first pass computes it
    per chunk). v4 declares factors too: every block reads their states apart, and counts
    the states whose date lacks one (here a delisted fund's) as one block does. Either way
    three blocks write the one-block rows, byte for byte."""
    dates = _dates(prices, "month")[-2:]
    kw: dict[str, Any] = {"model": model} if named else {"model": model, "market": None}
    if model.endswith("v4"):
        last = pl.read_parquet(prices).group_by("entity_id").agg(pl.col("date").max())
        ids = sorted(last["entity_id"])
        others = [e for e in ids if e != REFERENCE[prices]]
        gone = sorted(last.filter(pl.col("date") < dates[0] - dt.timedelta(days=60))["entity_id"])
        kw["factors"] = {
            "equity": REFERENCE[prices],
            "rates": others[3],
            "credit": others[-5],
            "fx": gone[0],
        }
    local = _run(prices, tmp_path / "local", dates, **kw)
    remote = _run(prices, tmp_path / "ray", dates, executor="ray", entity_blocks=3, **kw)
    if model.endswith("v4"):
        assert local["states_without_factor"] == {"fx": local["states_out"]}
    assert remote == local
    for day in dates:
        got = _rows(tmp_path / "ray", "joint_embeddings", day)
        assert got.equals(_rows(tmp_path / "local", "joint_embeddings", day))


@dataclass(frozen=True)
class EpisodesRead:
    """The check the test plugs in: before each task, whether its worker already holds the
    market context of every historical episode ended by the task's last date (else the
    task would read prices for them; `marks` gets one file per such task)."""

    marks: Path
    out: Path  # the run's (a worker keeps the builder of the run it served last)

    def __call__(self, task: Chunk) -> None:
        from stabfrag.engine.executors import ray as executor

        builders = [b for b in executor._WORKER.values() if b.config.out == self.out]
        library = builders[0].scenarios if builders else None
        ended = [] if library is None else library.key(task.dates[-1])[2]
        held = library is not None and all(sid in library.episode_context for sid in ended)
        self.marks.mkdir(parents=True, exist_ok=True)
        name = f"{task.dates[0]}-{task.block.index}-{len(ended)}-{'held' if held else 'to-read'}"
        (self.marks / name).touch()


@pytest.mark.parametrize("named", [True, False])
def test_the_episodes_contexts_are_read_once_for_every_worker(
    ray_local: None, prices: Path, tmp_path: Path, named: bool
) -> None:
    """Each historical episode's market context (v4) is read once per run, by one task,
    and every task starts with it: a worker does not read the universe's prices on each
    episode's last day again. The bytes are the local run's."""
    dates = _dates(prices, "month")
    kw: dict[str, Any] = {} if named else {"market": None}
    local = _run(prices, tmp_path / "local", dates, **kw)
    marks, out = tmp_path / "marks", tmp_path / "ray"
    check = EpisodesRead(marks, out)
    remote = _run(prices, out, dates, executor="ray", entity_blocks=2, before_task=check, **kw)
    assert remote == local
    checked = sorted(p.name for p in marks.iterdir())
    assert len(checked) == len(list(chunks(dates, 45))) * 2  # every task, each block
    assert all(name.endswith("-held") for name in checked), checked
    assert any(not name.endswith("-0-held") for name in checked)  # episodes had ended
    for day in dates:
        for table in ("joint_embeddings", "scenarios"):
            assert _rows(tmp_path / "ray", table, day).equals(_rows(tmp_path / "local", table, day))


@pytest.mark.filterwarnings("ignore")
def test_without_the_extra_ray_is_one_line(
    prices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if `pip install stabfrag` only
    base = ["backfill", "--start", "2024-11-01", "--end", "2024-12-31", "--prices", str(prices)]
    res = runner.invoke(app, [*base, "--out", str(tmp_path), "--executor", "ray"])
    assert res.exit_code == 2
    assert res.stderr == (
        "stabfrag: --executor ray needs Ray: pip install 'stabfrag[ray]' "
        "(or use --executor local)\n"
    )


@pytest.mark.pg
def test_load_reads_every_block(
    ray_local: None, prices: Path, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    """PostgreSQL is loaded after the backfill, from the sealed dates, all blocks of each."""
    import psycopg
    from psycopg import sql

    dates = _dates(prices, "month")[-3:]
    _run(prices, tmp_path / "ray", dates, executor="ray", entity_blocks=3)
    table = f"{pg_schema}.joint_embeddings"
    assert (
        runner.invoke(app, ["db", "init", "--pg-dsn", pg_dsn, "--pg-table", table]).exit_code == 0
    )
    args = ["load", "--out", str(tmp_path / "ray"), "--pg-dsn", pg_dsn, "--pg-table", table]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.stderr
    rows = sum(read_table(tmp_path / "ray", "joint_embeddings", d).height for d in dates)
    with psycopg.connect(pg_dsn) as conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg_schema, "joint_embeddings"))
        ).fetchone()
    assert count == (rows,)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.stderr  # a second load replaces, nothing doubled
    with psycopg.connect(pg_dsn) as conn:
        again = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg_schema, "joint_embeddings"))
        ).fetchone()
    assert again == (rows,)


@pytest.mark.parametrize(
    ("address", "says", "code"),
    [
        ("127.0.0.1:1", "--ray-address 127.0.0.1:1: nothing answers there", 1),
        ("ray://127.0.0.1:1", "--ray-address ray://127.0.0.1:1: nothing answers there", 1),
        ("somewhere", "--ray-address somewhere: expected auto, HOST:PORT or ray://HOST:PORT", 2),
    ],
)
def test_an_address_that_does_not_answer_is_one_line(
    prices: Path, tmp_path: Path, address: str, says: str, code: int
) -> None:
    """A cluster that does not answer fails the run (1); an address that is no address is
    bad usage (2)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    base = ["backfill", "--start", "2024-11-01", "--end", "2024-12-31", "--prices", str(prices)]
    res = runner.invoke(
        app, [*base, "--out", str(tmp_path), "--executor", "ray", "--ray-address", address]
    )
    assert res.exit_code == code and res.stderr.startswith(f"stabfrag: {says}")
    assert len(res.stderr.splitlines()) == 1
