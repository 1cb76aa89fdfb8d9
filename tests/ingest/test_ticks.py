"""The bad-tick rule: hand-made spikes are rejected, genuine moves are not, and a state never
uses a verdict that needs a close after its as-of date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.cli import app
from stabfrag.config import BuildConfig
from stabfrag.engine import loop
from stabfrag.ingest.prices import validate
from stabfrag.ingest.ticks import MAX_CLOSE
from stabfrag.schema import PRICE_SCHEMA
from stabfrag.synth import Market

runner = CliRunner()


def _series(n: int = 300, *, seed: int = 3) -> pl.DataFrame:
    """One entity, business days, 1 % daily moves, a consistent high/low."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    dates = pl.date_range(dt.date(2020, 1, 1), dt.date(2022, 12, 31), eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5).head(n)
    return pl.DataFrame(
        {
            "entity_id": "A.US",
            "date": dates,
            "close": close,
            "volume": 1000.0,
            "high": close * 1.005,
            "low": close * 0.995,
            "spread_bps": None,
        },
        schema=PRICE_SCHEMA,
    )


def _set(frame: pl.DataFrame, i: int, **values: float) -> pl.DataFrame:
    idx = pl.int_range(pl.len()) == i
    return frame.with_columns(
        pl.when(idx).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items()
    )


def _scale_path(frame: pl.DataFrame, i: int, factor: float) -> pl.DataFrame:
    """Multiply close, high and low from row i on (a genuine level shift)."""
    idx = pl.int_range(pl.len()) >= i
    return frame.with_columns(
        pl.when(idx).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
        for c in ("close", "high", "low")
    )


def _ticks(frame: pl.DataFrame, **kw: float) -> pl.DataFrame:
    v = validate(frame.with_row_index("_row").with_columns(_raw_columns()), min_prices=0, **kw)
    return v.rejects.filter(pl.col("reason") == "bad_tick")


def _raw_columns() -> list[pl.Expr]:
    names = ("date", "close", "volume", "high", "low", "spread_bps")
    return [pl.lit(None, pl.String).alias(f"_{n}_raw") for n in names] + [
        pl.col("_row").cast(pl.Int64)
    ]


def test_a_spike_that_reverts_is_a_bad_tick_known_the_next_day() -> None:
    base = _series()
    c = base["close"][200]
    spiked = _set(base, 200, close=c * 100, high=c * 100, low=c * 0.99)
    rej = _ticks(spiked)
    assert rej["date"].to_list() == [base["date"][200]]
    assert "reverts" in rej["detail"][0]
    v = validate(spiked.with_row_index("_row").with_columns(_raw_columns()), min_prices=0)
    assert v.ticks["known_on"].to_list() == [base["date"][201]]
    assert v.prices.height == base.height - 1


@pytest.mark.parametrize("factor", [0.75, 0.6, 1.5])
def test_a_genuine_level_shift_is_not_a_tick(factor: float) -> None:
    """A crash (or jump) that stays, even one that partly rebounds, is data."""
    moved = _scale_path(_series(), 200, factor)
    assert _ticks(moved).height == 0
    rebound = _scale_path(moved, 201, 1.1)  # gives back a part of the move the next day
    assert _ticks(rebound).height == 0


def test_a_quiet_series_keeps_a_small_spike() -> None:
    """Below the floor (15 %) a jump and revert is never a tick, however quiet the series."""
    base = _series().with_columns(pl.col("close") * 0 + 100.0 + pl.int_range(pl.len()) * 1e-3)
    base = base.with_columns(high=pl.col("close"), low=pl.col("close"))
    spiked = _set(base, 200, close=110.0, high=110.0, low=110.0)
    assert _ticks(spiked).height == 0
    assert _ticks(_set(base, 200, close=125.0, high=125.0, low=125.0)).height == 1


def test_a_close_far_outside_its_range_is_a_tick_a_near_one_only_drops_the_range() -> None:
    base = _series()
    c = base["close"][150]
    far = _set(base, 150, close=c * 3)
    rej = _ticks(far)
    assert rej.height == 1 and "outside the day's range" in rej["detail"][0]
    near = _set(base, 150, close=c * 1.02)
    v = validate(near.with_row_index("_row").with_columns(_raw_columns()), min_prices=0)
    assert v.rejects.height == 0 and v.range_dropped == 1


def test_an_absurd_close_is_a_tick_even_on_the_last_day() -> None:
    base = _series()
    rej = _ticks(_set(base, base.height - 1, close=1e308, high=1e308, low=1e308))
    assert rej.height == 1 and str(int(MAX_CLOSE)) not in rej["detail"][0]
    assert "above" in rej["detail"][0]


def test_multiple_zero_turns_the_rule_off() -> None:
    base = _series()
    spiked = _set(base, 200, close=base["close"][200] * 100)
    assert _ticks(spiked, bad_tick=0).height == 0


def _with_spike(market: Market, entity: str, day: dt.date, factor: float) -> pl.DataFrame:
    hit = (pl.col("entity_id") == entity) & (pl.col("date") == day)
    return market.prices.with_columns(
        pl.when(hit).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
        for c in ("close", "high", "low")
    )


def _state(out: Path, entity: str, day: dt.date) -> pl.DataFrame:
    rows = pl.read_parquet(out / f"joint_embeddings/as_of_date={day}/part-0.parquet")
    return rows.filter(pl.col("entity_id") == entity).select(
        "vector", "fragility", "nearest_scenario_id"
    )


def test_a_spike_six_months_back_no_longer_flips_the_state(market: Market, tmp_path: Path) -> None:
    """The hostile case: one close x100 before the as-of date. With the rule the state is the
    state of the file without that row; with the rule off it is not."""
    entity = market.prices["entity_id"].unique().sort()[3]
    dates = market.prices.filter(pl.col("entity_id") == entity)["date"].sort()
    as_of, day = dates[-1], dates[-126]
    files = {
        "spiked": _with_spike(market, entity, day, 100.0),
        "clean": market.prices.filter(~((pl.col("entity_id") == entity) & (pl.col("date") == day))),
    }
    for name, frame in files.items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    states = {}
    for name, bad_tick in (("spiked", 10.0), ("clean", 10.0), ("spiked-off", 0.0)):
        src = tmp_path / f"{name.split('-')[0]}.parquet"
        out = tmp_path / name
        loop.run(BuildConfig(prices=src, out=out, bad_tick=bad_tick), [as_of])
        states[name] = _state(out, entity, as_of)
    assert states["spiked"].equals(states["clean"])
    assert not states["spiked-off"].equals(states["clean"])
    rejects = pl.read_parquet(tmp_path / f"spiked/rejects/as_of_date={as_of}/part-0.parquet")
    assert rejects.filter(pl.col("reason") == "bad_tick")["date"].to_list() == [day]


def test_on_the_spike_day_the_state_still_sees_the_spike(market: Market, tmp_path: Path) -> None:
    """No look-ahead: as of the spike's own day nobody knows it reverts. A daily backfill
    over the spike gives the build's bytes on every date, and reports the tick on the day
    after it, under the as-of date that first knows it."""
    entity = market.prices["entity_id"].unique().sort()[5]
    dates = market.prices.filter(pl.col("entity_id") == entity)["date"].sort()
    day, after = dates[-40], dates[-39]
    path = tmp_path / "spiked.parquet"
    _with_spike(market, entity, day, 50.0).write_parquet(path)
    span = [
        d
        for d in market.prices["date"].unique().sort().to_list()
        if day - dt.timedelta(5) <= d <= after
    ]
    back = tmp_path / "back"
    summary = loop.run(BuildConfig(prices=path, out=back), span)
    assert summary.rows_rejected == {"bad_tick": 1}
    for d in (day, after):
        one = tmp_path / f"one-{d}"
        loop.run(BuildConfig(prices=path, out=one), [d])
        assert _state(one, entity, d).equals(_state(back, entity, d)), d
    # As of the spike day the spike is in the state (fragility of a x50 close), not after.
    assert not _state(back, entity, day).equals(_state(back, entity, after))
    clean = tmp_path / "clean.parquet"
    market.prices.write_parquet(clean)
    loop.run(BuildConfig(prices=clean, out=tmp_path / "c"), [day])
    assert not _state(back, entity, day).equals(_state(tmp_path / "c", entity, day))
    by_date = {
        d: pl.read_parquet(back / f"rejects/as_of_date={d}/part-0.parquet")
        .filter(pl.col("reason") == "bad_tick")
        .height
        for d in span
    }
    assert by_date[after] == 1 and sum(by_date.values()) == 1


def test_counts_do_not_depend_on_a_chunk_ending_on_the_spike(
    market: Market, tmp_path: Path
) -> None:
    """The spike is read (and counted) by the chunk of its date, but known only in the next
    chunk: read once, rejected once, whatever the chunking."""
    entity = market.prices["entity_id"].unique().sort()[7]
    dates = market.prices.filter(pl.col("entity_id") == entity)["date"].sort()
    day = dates[-60]
    path = tmp_path / "spiked.parquet"
    _with_spike(market, entity, day, 0.01).write_parquet(path)
    span = [d for d in dates.to_list() if day - dt.timedelta(20) <= d <= day + dt.timedelta(20)]
    keys = ("rows_read", "rows_rejected", "row_rejects_by_reason")
    runs = {}
    for chunk_days in (5000, (day - span[0]).days + 1):  # one chunk; one that ends on the spike
        cfg = BuildConfig(prices=path, out=tmp_path / f"c{chunk_days}", chunk_days=chunk_days)
        summary = loop.run(cfg, span).as_dict()
        runs[chunk_days] = {k: summary[k] for k in keys}
    one, split = runs.values()
    assert one == split and one["row_rejects_by_reason"] == {"bad_tick": 1}


def test_cli_validate_counts_ticks_and_the_switch_turns_them_off(
    market: Market, tmp_path: Path
) -> None:
    entity = market.prices["entity_id"].unique().sort()[1]
    day = market.prices.filter(pl.col("entity_id") == entity)["date"].sort()[-100]
    path = tmp_path / "spiked.parquet"
    _with_spike(market, entity, day, 100.0).write_parquet(path)
    on = runner.invoke(app, ["validate", "--prices", str(path)])
    assert on.exit_code == 0 and "bad_tick=1" in on.stdout
    off = runner.invoke(app, ["validate", "--prices", str(path), "--bad-tick", "0"])
    assert off.exit_code == 0 and "bad_tick" not in off.stdout


def test_a_reference_path_waits_for_the_verdict_on_its_last_day() -> None:
    """A scenario's real path is used only once every tick verdict inside it is known."""
    from stabfrag.model.scenario_space import _path_known
    from stabfrag.scenarios.library import load_library

    library = load_library()
    real = next(s for s in library if s.reference_entity and s.episode_end)
    end = real.episode_end
    assert end is not None
    ticks = pl.DataFrame(
        {
            "entity_id": [real.reference_entity, real.reference_entity, "OTHER"],
            "date": [end, end - dt.timedelta(30), end],
            "known_on": [end + dt.timedelta(3), end - dt.timedelta(29), end + dt.timedelta(9)],
        }
    )
    assert _path_known(library, None)[real.id] == end
    assert _path_known(library, ticks)[real.id] == end + dt.timedelta(3)
    # A factor model takes its declared factors' observed states too: their verdicts count.
    assert _path_known(library, ticks, also=("OTHER",))[real.id] == end + dt.timedelta(9)


def _naive_ticks(rows: pl.DataFrame, multiple: float) -> list[tuple[int, dt.date | None]]:
    """(row, known-on date) of every bad tick, by the module docstring read row by row."""
    from stabfrag.ingest import ticks as t

    ids, dates = rows["entity_id"].to_list(), rows["date"].to_list()
    close, low, high = (rows[c].to_numpy() for c in ("close", "low", "high"))
    n = len(ids)
    r = [
        float(np.log(close[i] / close[i - 1])) if i and ids[i] == ids[i - 1] else None
        for i in range(n)
    ]
    out, obs = [], 0
    for i in range(n):  # the deliberately plain twin
        obs = obs + 1 if i and ids[i] == ids[i - 1] else 0
        same_next = i + 1 < n and ids[i + 1] == ids[i]
        back = r[i + 1] if same_next else None
        if obs > t.SCALE_ROWS:
            prev = np.abs(np.array(r[i - t.SCALE_ROWS : i]))
            h = max(float(np.median(prev)) * t.MAD_TO_SIGMA * multiple, t.MIN_JUMP)
        else:
            h = t.EARLY_JUMP
        jump = r[i]
        spike = (
            jump is not None
            and back is not None
            and abs(jump) > h
            and abs(back) > h
            and np.sign(jump) != np.sign(back)
            and abs(jump + back) <= t.REVERT_SHARE * abs(jump)
        )
        lo, hi, c = low[i], high[i], close[i]
        consistent = np.isfinite(lo) and np.isfinite(hi) and lo > 0 and lo <= hi
        off = bool(consistent and max(np.log(lo / c), np.log(c / hi), 0.0) > h)
        huge = c > t.MAX_CLOSE
        if spike or off or huge:
            out.append((i, dates[i + 1] if spike and not (off or huge) else None))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_find_ticks_is_the_rule_read_row_by_row(seed: int) -> None:
    """Spikes, level shifts, closes outside their range and absurd closes, on several
    entities of random lengths: the vector rule finds exactly what a row loop finds."""
    from stabfrag.ingest.ticks import find_ticks

    rng = np.random.default_rng(seed)
    frames = []
    for e in range(5):
        part = _series(int(rng.integers(2, 200)), seed=seed * 10 + e)
        part = part.with_columns(pl.lit(f"E{e}").alias("entity_id"))
        for i in rng.integers(0, part.height, 6):
            kind = rng.integers(0, 4)
            if kind == 0:  # a spike (which may or may not revert)
                part = _set(part, int(i), close=float(part["close"][int(i)] * rng.choice([0.3, 4])))
            elif kind == 1:
                part = _scale_path(part, int(i), float(rng.choice([0.5, 1.3, 3.0])))
            elif kind == 2:  # outside the range, far or near
                hi = float(part["high"][int(i)])
                part = _set(part, int(i), close=hi * float(rng.choice([1.01, 1.5])))
            else:
                part = _set(part, int(i), close=MAX_CLOSE * 2)
        if rng.random() < 0.5:  # rows without a range
            part = part.with_columns(pl.lit(None, pl.Float64).alias("low"))
        frames.append(part)
    rows = pl.concat(frames)
    for multiple in (3.0, 10.0, 40.0):  # the floor, then the entity's own scale, decides
        found = find_ticks(rows, multiple)
        got = list(zip(found["_i"].to_list(), found["_known_on"].to_list(), strict=True))
        assert got == _naive_ticks(rows, multiple)
