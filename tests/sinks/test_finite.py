"""The non-finite check on whole tables before they are cut into partitions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from stabfrag.errors import SinkError
from stabfrag.schema import VECTOR_TYPE
from stabfrag.sinks.base import Partition, Sink, check_tables, first_nonfinite

DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]


def _table(bad_row: int | None = None, *, vector: bool = False) -> pl.DataFrame:
    vectors = np.full((4, 384), 1 / np.sqrt(384), dtype=np.float32)  # unit vectors
    vol = np.array([0.1, None, 0.3, 0.4], dtype=object)
    if bad_row is not None and vector:
        vectors[bad_row, 7] = np.inf
    elif bad_row is not None:
        vol[bad_row] = np.nan
    return pl.DataFrame(
        {
            "as_of_date": [DAYS[0], DAYS[0], DAYS[1], DAYS[1]],
            "vol_21": pl.Series(list(vol), dtype=pl.Float64, strict=False),
            "vector": pl.Series(vectors, dtype=VECTOR_TYPE),
        }
    )


def test_finite_tables_pass_and_nulls_are_not_non_finite() -> None:
    assert first_nonfinite(_table()) is None
    check_tables({"features": _table(), "empty": _table().head(0)})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table(2), "features 2024-01-03: column vol_21 holds non-finite values"),
        (_table(0, vector=True), "features 2024-01-02: a vector holds non-finite values"),
    ],
)
def test_the_error_names_the_table_the_date_and_the_column(
    table: pl.DataFrame, message: str
) -> None:
    with pytest.raises(SinkError) as err:
        check_tables({"features": table})
    assert str(err.value) == message


class _Recorder(Sink):
    def __init__(self) -> None:
        self.staged: list[dt.date] = []

    def stage(self, partition: Partition) -> None:
        self.staged.append(partition.as_of)


def test_a_sink_checks_a_partition_unless_its_tables_were_checked() -> None:
    bad = {"features": _table(1).with_columns(pl.lit(np.nan).alias("vol_21"))}
    sink = _Recorder()
    with pytest.raises(SinkError, match="column vol_21"):
        sink.write(Partition(DAYS[0], bad))
    # Checked upstream (check_tables on the whole table): not queried again per date.
    sink.write(Partition(DAYS[0], bad, finite_checked=True))
    assert sink.staged == [DAYS[0]]
