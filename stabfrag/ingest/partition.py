"""`stabfrag prices partition`: one prices file as a folder of yearly Parquet files.

Many workers reading one large file each scan all of it; read from a folder, a look-back
read opens only the files (and row groups) whose dates it needs. Rows keep their columns
as read, plus `source_row`, their place in the original file, so a build from the folder
keeps the same duplicates and writes the same rejects as a build from the file.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import polars as pl

from stabfrag.errors import InputError, first_line
from stabfrag.ingest.files import check_columns, file_format
from stabfrag.ingest.prices import SOURCE_ROW, collect, date_expr
from stabfrag.schema import DATE, REQUIRED_PRICE_COLUMNS

YEAR = "_year"


def _raw(source: Path) -> pl.LazyFrame:
    fmt = file_format(source)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(source, row_index_name=SOURCE_ROW)
        else:
            lf = pl.scan_csv(source, infer_schema=False, row_index_name=SOURCE_ROW)
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
        raise InputError(source, f"cannot read: {first_line(exc)}") from None
    names = schema.names()[1:]  # the row index comes first
    check_columns(source, names, list(REQUIRED_PRICE_COLUMNS))
    if SOURCE_ROW in names:
        raise InputError(source, f"already has a {SOURCE_ROW} column (is it partitioned?)")
    year = date_expr(schema[DATE], source).dt.year().alias(YEAR)
    return lf.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), year)


def partition_prices(source: Path, out: Path) -> dict[str, int]:
    """Write `source` as out/year=YYYY/part-0.parquet (undated rows in year=none); the
    folder appears whole or not at all. Returns the rows written per year folder."""
    if out.exists():
        raise InputError(out, "already exists; choose a new folder")
    lf = _raw(source)
    years = collect(lf.select(pl.col(YEAR).unique().sort()), source)[YEAR].to_list()
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    written: dict[str, int] = {}
    try:
        for year in years:  # one pass per calendar year of the file
            name = f"year={'none' if year is None else year}"
            keep = pl.col(YEAR).is_null() if year is None else pl.col(YEAR) == year
            frame = collect(lf.filter(keep).drop(YEAR), source)
            (tmp / name).mkdir(parents=True)
            frame.write_parquet(tmp / name / "part-0.parquet", compression="zstd", statistics=True)
            written[name] = frame.height
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written
