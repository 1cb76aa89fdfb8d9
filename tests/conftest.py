"""Shared fixtures: tiny explicit frames and a small generated market."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from stabfrag.schema import PRICE_SCHEMA
from stabfrag.synth import Market, generate


def random_panel(
    seed: int, entities: int, max_len: int, *, with_nulls: bool = True, min_len: int = 2
) -> pl.DataFrame:
    """A panel with ragged histories, calendar gaps, zero and unknown volumes."""
    rng = np.random.default_rng(seed)
    frames = []
    for e in range(entities):  # test data only: a loop over a few entities is fine here
        n = int(rng.integers(min_len, max_len + 1))
        gaps = rng.integers(1, 6, n)  # calendar gaps of 1 to 5 days
        start = dt.date(2000, 1, 3) + dt.timedelta(days=int(rng.integers(0, 400)))
        dates = [start + dt.timedelta(days=int(d)) for d in np.cumsum(gaps)]
        vol = rng.normal(0, 0.02, n) * np.exp(rng.normal(0, 0.5, n))
        close = 50 * np.exp(np.cumsum(vol))
        volume = np.round(10 ** rng.uniform(0, 6, n))
        volume[rng.random(n) < 0.05] = 0.0
        volume_list: list[float | None] = list(volume)
        if with_nulls and rng.random() < 0.3:
            for i in rng.integers(0, n, 2):
                volume_list[int(i)] = None
        spread = 100 + np.cumsum(rng.normal(0, 2, n)) if rng.random() < 0.5 else np.full(n, np.nan)
        high = close * np.exp(np.abs(rng.normal(0, 0.01, n)))
        low = close * np.exp(-np.abs(rng.normal(0, 0.01, n)))
        frames.append(
            pl.DataFrame(
                {
                    "entity_id": f"E{e}.US",
                    "date": dates,
                    "close": close,
                    "volume": volume_list,
                    "high": high,
                    "low": low,
                    "spread_bps": spread,
                },
                schema=PRICE_SCHEMA,
            ).with_columns(pl.col("spread_bps").fill_nan(None))
        )
    return pl.concat(frames).sort("entity_id", "date")


@pytest.fixture(scope="session")
def market() -> Market:
    """150 entities x 1,000 days: a market crash, a volatility spike and eight blow-ups."""
    return generate(entities=150, days=1000, seed=11)


@pytest.fixture(scope="session")
def market_dir(tmp_path_factory: pytest.TempPathFactory, market: Market) -> Path:
    from stabfrag.synth import write_market

    out = tmp_path_factory.mktemp("market")
    write_market(market, out)
    return out


def market_episodes_of(market: Market) -> pl.DataFrame:
    """Each market-wide episode of a generated market: event_id, event_type, its first
    and last date."""
    return (
        market.events.filter(pl.col("scope") == "MARKET")
        .group_by("event_id", "event_type")
        .agg(pl.col("start_date").min(), pl.col("end_date").max())
        .sort("start_date")
    )


def event_dates(market: Market, event_type: str) -> list[dt.date]:
    ends = market.events.filter(pl.col("event_type") == event_type)["end_date"]
    return sorted(set(ends.to_list()))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, market: Market, market_dir: Path) -> Path:
    """A build of the crash end, every blow-up end and the last date of the market."""
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop

    dates = [
        *event_dates(market, "CRASH"),
        *event_dates(market, "BLOWUP"),
        market.prices["date"].max(),
    ]
    out = tmp_path_factory.mktemp("built")
    config = BuildConfig(
        prices=market_dir / "prices.parquet", entities=market_dir / "entities.parquet", out=out
    )
    loop.run(config, sorted(set(dates)))
    return out


DEFAULT_TEST_DSN = "postgresql://root@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server; skipped with a reason when absent, failed under STABFRAG_REQUIRE_PG=1."""
    import os

    import psycopg

    dsn = os.environ.get("STABFRAG_TEST_DSN", DEFAULT_TEST_DSN)
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        why = f"PostgreSQL at STABFRAG_TEST_DSN is not reachable ({type(exc).__name__})"
        if os.environ.get("STABFRAG_REQUIRE_PG") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return dsn


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    import uuid

    import psycopg
    from psycopg import sql

    name = f"sf_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def kill_when(proc: Any, ready: Callable[[], bool], *, group: bool = False) -> None:
    """SIGKILL a running command (and its process group) as soon as `ready()` holds; fail
    the test if the command ends first."""
    import os
    import signal
    import time

    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not ready():
            if proc.poll() is not None:
                pytest.fail("the command ended before it could be killed")
            time.sleep(0.02)
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def models_with(folder: Path, model_id: str, **keys: object) -> Path:
    """`folder` as a copy of the shipped models whose `model_id` manifest has `keys` set (a
    key set to None is removed), rewritten and verifiable as a fit writes it."""
    import shutil

    from stabfrag.model.bundle import shipped_models
    from stabfrag.model.manifest import read_verified, write_artefact

    shutil.copytree(shipped_models(), folder, dirs_exist_ok=True)
    manifest, projection = read_verified(folder, model_id)
    kept = {k: v for k, v in manifest.items() if k not in ("model_id", "created")}
    kept.pop("projection_sha256")
    for key, value in keys.items():
        kept.pop(key, None)
        if value is not None:
            kept[key] = value
    write_artefact(folder, model_id, projection, kept)
    return folder
