"""Fundamentals: bad rows become rejects with reasons, counts reconcile, values are taken
point in time with a staleness limit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from stabfrag.errors import InputError
from stabfrag.profiles.fundamentals import FIELD_NAMES, fundamentals_at, read_fundamentals

KNOWN_UNTIL = dt.date(2024, 6, 28)


def test_bad_rows_are_rejects_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    pl.DataFrame(
        {
            "entity_id": ["A", "A", "A", "B", "B", "", "A", "B", "B"],
            "date": [
                "2020-03-31", "2020-03-31", "2020-06-30", "2020-03-31", "2031-01-01",
                "2020-03-31", "2020-03-31", "not a date", "2020-06-30",
            ],
            "field": [
                "leverage", "governance_score", "leverage", "size", "size",
                "size", "leverage", "size", "interest_cover",
            ],
            "value": ["1.5", "2", "n/a", "21.3", "22", "1", "9", "3", "inf"],
        }
    ).write_csv(path)  # fmt: skip
    got = read_fundamentals(path, known_until=KNOWN_UNTIL)
    reasons = dict(zip(got.rejects["source_row"], got.rejects["reason"], strict=True))
    assert reasons == {
        1: "unknown_field",
        2: "non_numeric_value",
        4: "future_date",
        5: "bad_entity_id",
        6: "duplicate",
        7: "bad_date",
        8: "nonfinite_value",
    }
    assert got.rows_in == got.rows.height + got.rejects.height == 9
    assert got.rows.select("entity_id", "field").rows() == [("A", "leverage"), ("B", "size")]
    assert (
        "governance_score" in got.rejects.filter(pl.col("reason") == "unknown_field")["detail"][0]
    )


def test_an_entity_without_prices_is_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pl.DataFrame(
        {"entity_id": ["A", "Z"], "date": [dt.date(2020, 3, 31)] * 2, "field": ["size"] * 2,
         "value": [1.0, 2.0]}
    ).write_parquet(path)  # fmt: skip
    got = read_fundamentals(path, known_until=KNOWN_UNTIL, entities=pl.Series(["A", "B"]))
    assert got.rejects.select("entity_id", "reason").rows() == [("Z", "unknown_entity")]
    assert got.rows["entity_id"].to_list() == ["A"]


def test_a_wide_file_reads_as_the_long_one(tmp_path: Path) -> None:
    wide = tmp_path / "wide.parquet"
    long = tmp_path / "long.parquet"
    day = [dt.date(2020, 3, 31), dt.date(2020, 6, 30)]
    pl.DataFrame(
        {"entity_id": ["A", "A"], "date": day, "leverage": [1.0, 2.0], "size": [5.0, None]}
    ).write_parquet(wide)
    pl.DataFrame(
        {
            "entity_id": ["A", "A", "A"],
            "date": [day[0], day[1], day[0]],
            "field": ["leverage", "leverage", "size"],
            "value": [1.0, 2.0, 5.0],
        }
    ).write_parquet(long)
    a = read_fundamentals(wide, known_until=KNOWN_UNTIL)
    b = read_fundamentals(long, known_until=KNOWN_UNTIL)
    assert a.rows.equals(b.rows)
    assert a.rejects["reason"].to_list() == ["missing_value"]  # the null size
    assert a.rows_in == 4 and b.rows_in == 3


def test_values_are_taken_point_in_time_with_a_staleness_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pl.DataFrame(
        {
            "entity_id": ["A", "A", "B"],
            "date": [dt.date(2020, 3, 31), dt.date(2020, 6, 30), dt.date(2019, 1, 31)],
            "field": ["leverage", "leverage", "size"],
            "value": [1.0, 2.0, 7.0],
        }
    ).write_parquet(path)
    rows = read_fundamentals(path, known_until=KNOWN_UNTIL).rows
    states = pl.DataFrame(
        {
            "entity_id": ["A", "A", "A", "B"],
            "as_of_date": [
                dt.date(2020, 3, 30),
                dt.date(2020, 6, 29),
                dt.date(2020, 6, 30),
                dt.date(2020, 6, 30),
            ],
        }
    )
    got = fundamentals_at(states, rows, max_staleness_days=400)
    assert got.columns == list(FIELD_NAMES)
    assert got["leverage"].to_list() == [None, 1.0, 2.0, None]
    assert got["size"].to_list() == [None, None, None, None]  # B's is 516 days old


def test_an_unreadable_or_shapeless_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot read fundamentals"):
        read_fundamentals(bad, known_until=KNOWN_UNTIL)
    nodate = tmp_path / "nodate.parquet"
    pl.DataFrame({"entity_id": ["A"], "leverage": [1.0]}).write_parquet(nodate)
    with pytest.raises(InputError, match="missing fundamentals column"):
        read_fundamentals(nodate, known_until=KNOWN_UNTIL)
