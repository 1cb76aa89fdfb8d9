from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from stabfrag.asof.requests import state_requests
from stabfrag.cli import app
from stabfrag.ingest import prices as inputs
from stabfrag.ingest.entities import read_entities
from stabfrag.schema import PRICE_SCHEMA

runner = CliRunner()


def _panel(entities: int = 2, days: int = 70) -> pl.DataFrame:
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    return pl.DataFrame(
        {
            "entity_id": [f"E{e}.US" for e in range(entities) for _ in dates],
            "date": dates * entities,
            "close": [100.0 + i for _ in range(entities) for i in range(days)],
            "volume": [1000.0] * (entities * days),
            "high": [200.0 + i for _ in range(entities) for i in range(days)],
            "low": [50.0] * (entities * days),
            "spread_bps": [None] * (entities * days),
        },
        schema=PRICE_SCHEMA,
    )


def _check(frame: pl.DataFrame, tmp_path: Path) -> inputs.Validated:
    path = tmp_path / "p.parquet"
    frame.write_parquet(path)
    return inputs.validate(inputs.read_prices(path))


def _set(frame: pl.DataFrame, row: int, **cols: object) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(idx == row).then(pl.lit(v, frame.schema[k])).otherwise(pl.col(k)).alias(k)
        for k, v in cols.items()
    )


@pytest.mark.parametrize(
    ("cols", "reason"),
    [
        ({"close": float("nan")}, "nonfinite_close"),
        ({"close": float("inf")}, "nonfinite_close"),
        ({"close": 0.0}, "nonpositive_close"),
        ({"close": -1.0}, "nonpositive_close"),
        ({"close": None}, "bad_close"),
        ({"volume": -1.0}, "bad_volume"),
        ({"volume": float("-inf")}, "bad_volume"),
        ({"entity_id": ""}, "bad_entity_id"),
        ({"entity_id": "X" * 65}, "bad_entity_id"),
        ({"date": None}, "bad_date"),
    ],
)
def test_bad_row_goes_to_rejects_and_nothing_else_drops(
    tmp_path: Path, cols: dict, reason: str
) -> None:
    frame = _set(_panel(days=80), 70, **cols)
    v = _check(frame, tmp_path)
    assert v.rejects.filter(pl.col("reason") == reason).height == 1
    assert v.rows_rejected == 1
    assert v.prices.height == frame.height - 1
    assert v.rows_in == v.prices.height + v.rows_rejected + v.rows_of_rejected_entities


def test_sixty_four_char_entity_id_is_fine(tmp_path: Path) -> None:
    frame = _panel(entities=1).with_columns(pl.lit("Y" * 64).alias("entity_id"))
    v = _check(frame, tmp_path)
    assert v.rows_rejected == 0 and v.prices.height == frame.height


def test_nan_volume_is_unknown_not_rejected(tmp_path: Path) -> None:
    v = _check(_set(_panel(), 5, volume=float("nan")), tmp_path)
    assert v.rows_rejected == 0
    assert v.prices["volume"].null_count() == 1


@pytest.mark.parametrize(
    "cols",
    [{"high": 10.0, "low": 20.0}, {"low": 0.0}, {"high": 101.0, "low": 100.5}, {"low": 500.0}],
)
def test_bad_range_is_dropped_not_rejected(tmp_path: Path, cols: dict) -> None:
    frame = _set(_panel(), 3, **cols)
    v = _check(frame, tmp_path)
    assert v.rows_rejected == 0
    assert v.range_dropped == 1
    row = v.prices.row(3, named=True)
    assert row["high"] is None and row["low"] is None and row["close"] == frame["close"][3]


@pytest.mark.parametrize(
    ("spread", "dropped"),
    [(-5.0, 1), (float("inf"), 0), (float("-inf"), 1), (float("nan"), 0)],
)
def test_an_unusable_spread_becomes_unknown_and_only_a_negative_one_counts(
    tmp_path: Path, spread: float, dropped: int
) -> None:
    frame = _panel().with_columns(pl.lit(80.0).alias("spread_bps"))
    v = _check(_set(frame, 7, spread_bps=spread), tmp_path)
    assert v.rows_rejected == 0 and v.spread_dropped == dropped
    assert v.prices["spread_bps"].null_count() == 1 and v.prices["spread_bps"][7] is None
    assert v.prices["spread_bps"].drop_nulls().to_list() == [80.0] * (frame.height - 1)


def test_a_clean_read_comes_back_with_its_values_untouched(tmp_path: Path) -> None:
    frame = _panel(entities=3).with_columns(pl.lit(80.0).alias("spread_bps"))
    v = _check(frame, tmp_path)
    assert v.rows_rejected == 0 and v.range_dropped == 0 and v.spread_dropped == 0
    assert v.prices.equals(frame.select(v.prices.columns))


def test_duplicates_keep_the_first_in_file_order(tmp_path: Path) -> None:
    frame = _panel(entities=1)
    dup = frame.slice(10, 1).with_columns(pl.lit(999.0).alias("close"))
    v = _check(pl.concat([frame, dup]), tmp_path)
    assert v.reject_counts() == {"duplicate": 1}
    assert (
        v.prices.filter(pl.col("date") == frame["date"][10])["close"].item() == frame["close"][10]
    )


def test_unsorted_rows_are_sorted_not_rejected(tmp_path: Path) -> None:
    frame = _panel().sample(fraction=1.0, shuffle=True, seed=3)
    v = _check(frame, tmp_path)
    assert v.rows_rejected == 0
    assert v.prices.equals(v.prices.sort("entity_id", "date"))


def test_short_history_rejects_the_entity(tmp_path: Path) -> None:
    frame = pl.concat(
        [
            _panel(entities=1),
            _panel(entities=1, days=63).with_columns(pl.lit("SHORT.US").alias("entity_id")),
        ]
    )
    v = _check(frame, tmp_path)
    assert v.entities_rejected == {"insufficient_history": 1}
    assert v.entities_in == 2
    assert v.rows_of_rejected_entities == 63
    assert v.rejects.filter(pl.col("reason") == "insufficient_history")["entity_id"].to_list() == [
        "SHORT.US"
    ]


def test_stale_entity_has_no_state(tmp_path: Path) -> None:
    frame = _panel(entities=1)
    path = tmp_path / "p.parquet"
    frame.write_parquet(path)
    as_of = frame["date"].max() + dt.timedelta(days=8)
    prices = inputs.validate(inputs.read_prices(path)).prices
    _, rejects = state_requests(prices, [as_of], max_staleness_days=7)
    assert rejects["reason"].to_list() == ["stale"]
    _, rejects = state_requests(prices, [as_of - dt.timedelta(days=1)], max_staleness_days=7)
    assert rejects.height == 0


def _cli(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("", "empty.csv", "empty"),
        ("entity_id,date,close\n", "header.csv", "no rows"),
        ("entity_id,date\nA,2020-01-01\n", "nocol.csv", "missing required column(s): close"),
        ("hello world", "text.parquet", "not a Parquet file"),
        ("whatever", "prices.json", "unknown format"),
    ],
)
def test_unreadable_file_exits_2_with_one_line(
    tmp_path: Path, content: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    code, out, err = _cli("validate", "--prices", str(path))
    assert code == 2
    assert message in err and str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _cli("validate", "--prices", str(tmp_path / "nope.parquet"))
    assert code == 2 and "no such file" in err


def test_parquet_with_text_close_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    _panel().with_columns(pl.col("close").cast(pl.String)).write_parquet(path)
    code, _, err = _cli("validate", "--prices", str(path))
    assert code == 2 and "close has type" in err


def test_csv_strings_in_close_are_rejected_rows(tmp_path: Path) -> None:
    frame = _panel(entities=1)
    path = tmp_path / "p.csv"
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7)
        .then(pl.lit("abc"))
        .otherwise(pl.col("close").cast(pl.String))
        .alias("close")
    ).write_csv(path)
    v = inputs.validate(inputs.read_prices(path))
    assert v.reject_counts() == {"bad_close": 1}
    assert "abc" in v.rejects["detail"][0]
    assert v.prices.height == frame.height - 1


def test_validate_cli_json_reconciles(tmp_path: Path) -> None:
    import json

    from stabfrag import synth

    market = synth.generate(entities=20, days=300, seed=1)
    path = tmp_path / "p.parquet"
    synth.inject_defects(market.prices, seed=1).write_parquet(path)
    code, out, _ = _cli("validate", "--prices", str(path), "--json")
    s = json.loads(out)
    assert code == 0
    assert s["rows_in"] == s["rows_kept"] + s["rows_rejected"] + s["rows_of_rejected_entities"]
    assert s["entities_in"] == s["entities_valid"] + s["entities_rejected"]
    assert sum(s["row_rejects_by_reason"].values()) == s["rows_rejected"]
    assert set(s["row_rejects_by_reason"]) == {
        "bad_close",
        "bad_entity_id",
        "bad_volume",
        "duplicate",
        "nonfinite_close",
        "nonpositive_close",
    }
    assert s["range_dropped"] == 3
    assert s["entity_rejects_by_reason"] == {"insufficient_history": 1}


def test_entities_defaults(tmp_path: Path) -> None:
    ids = pl.Series(["AAA.US", "BBB.DE", "CCC"])
    meta = read_entities(None, ids)
    assert meta["region"].to_list() == ["US", "DE", None]
    assert meta["entity_type"].to_list() == ["INSTRUMENT"] * 3
    path = tmp_path / "e.csv"
    path.write_text("entity_id,entity_type\nAAA.US,BOGUS\n")
    with pytest.raises(inputs.InputError, match="BOGUS"):
        read_entities(path, ids)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_partitioned_folder_reads_as_its_file(market, tmp_path: Path, suffix: str) -> None:
    """Duplicates keep the file's first, rejects name the file's rows, the output is the
    same bytes; an undated row lands in year=none and is still rejected."""
    from stabfrag.asof.calendar import as_of_dates
    from stabfrag.config import BuildConfig
    from stabfrag.engine import loop
    from stabfrag.synth import inject_defects

    frame = inject_defects(market.prices, seed=5)
    source = tmp_path / f"prices.{suffix}"
    if suffix == "csv":
        frame = frame.with_columns(pl.col("date").cast(pl.String))
        frame = _set(frame, 3, date="not a date", close=None)
        frame.write_csv(source)
    else:
        frame.write_parquet(source)
    code, out, err = _cli(
        "prices", "partition", "--prices", str(source), "--out", str(tmp_path / "f")
    )
    assert code == 0, err
    years = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert years[0] == "year=2021" and (years[-1] == "year=none") == (suffix == "csv")
    folder_rows = inputs.read_prices(tmp_path / "f")
    assert folder_rows.height == frame.height
    a = inputs.validate(inputs.read_prices(source))
    b = inputs.validate(folder_rows)
    assert a.rejects.sort(a.rejects.columns, nulls_last=True).equals(
        b.rejects.sort(b.rejects.columns, nulls_last=True)
    )
    assert a.prices.equals(b.prices) and a.reject_counts().get("duplicate", 0) > 0
    dates = as_of_dates(source, dt.date(2024, 9, 1), dt.date(2024, 12, 31), "month")
    for name, prices in (("file", source), ("folder", tmp_path / "f")):
        loop.run(BuildConfig(prices=prices, out=tmp_path / name), dates)
    parquet = {p.relative_to(tmp_path / "file") for p in (tmp_path / "file").rglob("*.parquet")}
    assert parquet and all(
        (tmp_path / "file" / p).read_bytes() == (tmp_path / "folder" / p).read_bytes()
        for p in parquet
    )


def test_prices_partition_refusals(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    _panel().write_parquet(path)
    (tmp_path / "taken").mkdir()
    code, _, err = _cli(
        "prices", "partition", "--prices", str(path), "--out", str(tmp_path / "taken")
    )
    assert (
        code == 2
        and err == f"stabfrag: {tmp_path / 'taken'}: already exists; choose a new folder\n"
    )
    (tmp_path / "empty").mkdir()
    code, _, err = _cli("validate", "--prices", str(tmp_path / "empty"))
    assert code == 2 and err.endswith("is a folder without Parquet files\n")
