"""The row rules' boolean pass against their reasons, on every kind of value."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stabfrag.ingest.prices import row_bad, row_reason

numbers = st.sampled_from([None, 1.0, 0.0, -2.0, math.nan, math.inf, -math.inf, 3.5])
rows = st.lists(
    st.tuples(
        st.sampled_from([None, "A", " A", "", "B\x01", "C.US"]),
        st.sampled_from([None, dt.date(2024, 1, 2)]),
        numbers,
        numbers,
        st.sampled_from([None, "", " ", "12", "x"]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(rows=rows, check_ids=st.booleans())
def test_a_row_is_bad_exactly_when_it_has_a_reason(
    rows: list[tuple[object, ...]], check_ids: bool
) -> None:
    frame = pl.DataFrame(
        rows,
        schema={
            "entity_id": pl.String,
            "date": pl.Date,
            "close": pl.Float64,
            "volume": pl.Float64,
            "_volume_raw": pl.String,
        },
        orient="row",
    )
    got = frame.select(
        row_bad(check_ids=check_ids).alias("bad"),
        row_reason(check_ids=check_ids).is_not_null().alias("reason"),
    )
    assert got["bad"].to_list() == got["reason"].to_list()
    # A read with no volume text (a numeric column) has no unparsable volume to judge.
    plain = frame.drop("_volume_raw")
    rules = {"check_ids": check_ids, "volume_text": False}
    without = plain.select(row_bad(**rules), row_reason(**rules).alias("reason"))
    nulled = frame.with_columns(pl.lit(None, pl.String).alias("_volume_raw")).select(
        row_reason(check_ids=check_ids)
    )
    assert without["reason"].to_list() == nulled.to_series().to_list()
    assert without.to_series(0).to_list() == without["reason"].is_not_null().to_list()
