"""Read and validate prices: scan -> (clean sorted frame, rejects, counts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.errors import InputError, first_line
from stabfrag.ingest.files import check_columns, file_format, folder_files
from stabfrag.ingest.reasons import MAX_GAP_DAYS, MIN_PRICES, counts_by_reason, entity_rule
from stabfrag.ingest.runs import (
    continues,
    entity_starts,
    history_starts,
    kept_starts,
    run_lengths,
)
from stabfrag.ingest.ticks import DEFAULT_MULTIPLE, find_ticks
from stabfrag.schema import (
    DATE,
    ENTITY,
    OPTIONAL_PRICE_COLUMNS,
    REJECTS_SCHEMA,
    REQUIRED_PRICE_COLUMNS,
)

ROW = "_row"  # position in file order; decides which duplicate is kept
SOURCE_ROW = "source_row"  # in a partitioned prices folder: the row's place in the source file
MAX_ENTITY_ID = 64


@dataclass(frozen=True)
class Validated:
    """The rows that passed, the rows and entities that did not, and the counts."""

    prices: pl.DataFrame  # sorted by (entity_id, date), one row per pair
    rejects: pl.DataFrame  # REJECTS_SCHEMA: row rejects and entity rejects
    rows_in: int
    rows_rejected: int  # rows that broke a row rule (duplicates included)
    range_dropped_dates: pl.Series  # date of each kept row whose inconsistent high/low went
    spread_dropped_dates: pl.Series  # date of each kept row whose negative spread went
    entities_in: int
    entities_rejected: dict[str, int] = field(default_factory=dict)
    # Bad ticks known only on a later date (a spike judged by the next close): their price
    # columns and `known_on`. Before that date a state still sees them (engine.requests).
    ticks: pl.DataFrame = field(default_factory=pl.DataFrame)
    # The first row of each entity in `prices` (stabfrag.ingest.runs): found once here.
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def range_dropped(self) -> int:
        """Kept rows whose high and low were dropped as inconsistent."""
        return self.range_dropped_dates.len()

    @property
    def spread_dropped(self) -> int:
        """Kept rows whose negative spread_bps was dropped (a credit spread is >= 0)."""
        return self.spread_dropped_dates.len()

    @property
    def rows_of_rejected_entities(self) -> int:
        """Valid rows that left with their entity (too short a history, stale)."""
        return self.rows_in - self.rows_rejected - self.prices.height

    def reject_counts(self) -> dict[str, int]:
        return counts_by_reason(self.rejects)


def _numeric(name: str, dtype: pl.DataType, path: Path, fmt: str) -> pl.Expr:
    """Cast a numeric column; a CSV string that is not a number becomes null here."""
    if dtype == pl.String() and fmt in ("csv", "folder"):
        return pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)
    if dtype.is_numeric():
        return pl.col(name).cast(pl.Float64)
    if dtype == pl.Null():
        return pl.col(name).cast(pl.Float64)
    raise InputError(path, f"column {name} has type {dtype}, expected a number")


MIDNIGHT_TEXT = r"^(?:[T ]00:00(?::00(?:\.0+)?)?)?(?:Z|[+-]\d\d(?::?\d\d)?)?$"


def date_expr(dtype: pl.DataType, path: Path) -> pl.Expr:
    """The date column as dates. A timestamp is a date when it is midnight in UTC or in its
    own time zone (so UTC-midnight instants stored in New York time keep their day); any
    other time of day gives null, and the row is rejected as bad_date."""
    if dtype == pl.Date():
        return pl.col(DATE)
    if isinstance(dtype, pl.Datetime):
        ts = pl.col(DATE)
        midnight = dt.time(0, 0)
        if dtype.time_zone is None:
            return pl.when(ts.dt.time() == midnight).then(ts.dt.date())
        utc = ts.dt.convert_time_zone("UTC")
        return (
            pl.when(utc.dt.time() == midnight)
            .then(utc.dt.date())
            .when(ts.dt.time() == midnight)
            .then(ts.dt.date())
        )
    if dtype == pl.String():
        # A date, or a date at midnight as text writes it (2023-06-21T00:00:00, with a space,
        # fractions of a second or a zone): the same rule as a Parquet timestamp's.
        text = pl.col(DATE).str.strip_chars()
        day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        return pl.when(text.str.slice(10).str.contains(MIDNIGHT_TEXT)).then(day)
    raise InputError(path, f"column {DATE} has type {dtype}, expected a date")


# The text a value was read from, for the rows rejects quote: kept only where parsing can
# fail (text columns and timestamps), and only for the columns a rule or a detail reads.
TEXT_COLUMNS = ("date", "close", "volume")


def _raw_text(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """The column's text as read, or None where it is a plain value. (No column of nulls:
    a column of one piece beside the read's many makes Polars join every column's pieces
    into one at each operation on the frame, 0.06 s per operation on 9 M rows.)"""
    if dtype == pl.String() or isinstance(dtype, pl.Datetime):
        return pl.col(name).cast(pl.String).alias(f"_{name}_raw")
    return None


def text_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every raw text column that the read left out as nulls (for the few
    rows whose rejects are written)."""
    missing = [f"_{n}_raw" for n in TEXT_COLUMNS if f"_{n}_raw" not in frame.columns]
    return frame.with_columns(pl.lit(None, pl.String).alias(name) for name in missing)


CONTROL = r"[\x00-\x1f\x7f]"


def entity_id_problem() -> pl.Expr:
    """Why an entity_id cannot name an entity, or null: missing, blank, too long, with
    surrounding spaces (trimming could merge two entities) or a control character."""
    eid = pl.col(ENTITY)
    return (
        pl.when(eid.is_null())
        .then(pl.lit("missing"))
        .when(eid.str.strip_chars().str.len_chars() == 0)
        .then(pl.lit("blank"))
        .when(eid.str.len_chars() > MAX_ENTITY_ID)
        .then(pl.lit(f"longer than {MAX_ENTITY_ID} characters"))
        .when(eid.str.contains(CONTROL))
        .then(pl.lit("a control character"))
        .when(eid != eid.str.strip_chars())
        .then(pl.lit("surrounding spaces"))
    )


def scan_prices(path: Path | str) -> pl.LazyFrame:
    """Scan a prices file into the canonical columns plus the raw text needed for rejects.

    Raises InputError for a file that cannot be read at all.
    """
    path = Path(path)
    fmt = file_format(path, folder=True)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(path, row_index_name=ROW)
        elif fmt == "folder":  # a file's rows in order, the files in path order
            lf = pl.scan_parquet(folder_files(path), row_index_name=ROW, hive_partitioning=False)
        else:
            lf = pl.scan_csv(path, infer_schema=False, row_index_name=ROW)
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
        raise InputError(path, f"cannot read: {first_line(exc)}") from None
    names = schema.names()
    check_columns(path, names, list(REQUIRED_PRICE_COLUMNS))
    if schema[ENTITY] not in (pl.String(), pl.Categorical(), pl.Null()):
        raise InputError(path, f"column {ENTITY} has type {schema[ENTITY]}, expected text")
    # A folder written by `stabfrag prices partition` keeps each row's place in the original
    # file, so duplicates resolve, and rejects read, as they do from that file.
    row = SOURCE_ROW if fmt == "folder" and SOURCE_ROW in names else ROW
    exprs = [
        pl.col(row).cast(pl.Int64).alias(ROW),
        pl.col(ENTITY).cast(pl.String),
        date_expr(schema[DATE], path).alias(DATE),
    ]
    for name in ["close", *OPTIONAL_PRICE_COLUMNS]:
        if name in names:
            exprs.append(_numeric(name, schema[name], path, fmt).alias(name))
        else:
            exprs.append(pl.lit(None, pl.Float64).alias(name))
    for name in TEXT_COLUMNS:
        text = _raw_text(name, schema[name]) if name in names else None
        if text is not None:
            exprs.append(text)
    return lf.select(exprs)


def collect(lf: pl.LazyFrame, path: Path | str) -> pl.DataFrame:
    """Run a scan of the file at `path`; a file that cannot be read is one line.

    A corrupt file can make polars panic: PanicException is a BaseException, not a
    PolarsError, so it is named here too.
    """
    try:
        frame = lf.collect()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
        first = first_line(exc)
        raise InputError(_culprit(Path(path)), f"cannot read: {first}") from None
    return aligned(frame)


def _culprit(path: Path) -> Path:
    """The file to name when a read fails: in a folder, the first Parquet file whose
    footer cannot be read (the folder itself when each can)."""
    if not path.is_dir():
        return path
    for name in folder_files(path):
        try:
            pl.read_parquet_schema(name)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError):
            return name
    return path


def aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its columns in pieces of the same rows. A scan filtered on a column
    returns that column in more pieces than the others, and every eager operation on such
    a frame joins all its columns into one piece again (0.05-0.2 s per operation on a 9 M
    row read): joined once here instead."""
    if len({column.n_chunks() for column in frame.get_columns()}) > 1:
        return frame.rechunk()
    return frame


def read_prices(path: Path | str, *, where: pl.Expr | None = None) -> pl.DataFrame:
    """Read the prices rows that satisfy `where` (pushed down to the scan: a date range
    reads only its row groups). An empty file is an error whatever the filter."""
    lf = scan_prices(path)
    if collect(lf.select(pl.len()), path).item() == 0:
        raise InputError(path, "no rows")
    return collect(lf if where is None else lf.filter(where), path)


def window_filter(start: dt.date | None, end: dt.date, *, include_undated: bool = False) -> pl.Expr:
    """Rows dated in [start, end]; undated rows too when asked (so they reach rejects)."""
    cond = pl.col(DATE) <= end
    if start is not None:
        cond = cond & (pl.col(DATE) >= start)
    return cond | pl.col(DATE).is_null() if include_undated else cond


def judge_ids(ids: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """(the ids that can name an entity, whether any cannot) of a frame of distinct
    entity_ids. Judged once per distinct id, not per row: the text checks cost more than
    every other rule together on a large read, so rows are checked only when this is True."""
    problem = ids.select(entity_id_problem().is_not_null()).to_series()
    bad = bool(problem.any())
    return (ids.filter(~problem) if bad else ids), bad


def _row_rules(check_ids: bool, volume_text: bool) -> list[tuple[str, pl.Expr]]:
    """Each row rule as (reason, whether the row breaks it), in the order they are judged.
    `check_ids=False` skips the entity_id rule, for rows whose ids are known good;
    `volume_text=False` the unparsable-volume rule, for a read with no volume text."""
    close = pl.col("close")
    vol = pl.col("volume")
    unparsable = (
        vol.is_null()
        & pl.col("_volume_raw").is_not_null()
        & (pl.col("_volume_raw").str.strip_chars() != "")
        if volume_text
        else pl.lit(False)
    )
    return [
        ("bad_entity_id", entity_id_problem().is_not_null() if check_ids else pl.lit(False)),
        ("bad_date", pl.col(DATE).is_null()),
        ("bad_close", close.is_null()),
        ("nonfinite_close", close.is_nan() | close.is_infinite()),
        ("nonpositive_close", close <= 0),
        ("bad_volume", unparsable),
        ("bad_volume", vol.is_infinite() | (vol < 0)),
    ]


def row_reason(*, check_ids: bool = True, volume_text: bool = True) -> pl.Expr:
    """The first rule a row breaks, or null; order matters only for the reason shown."""
    expr: Any = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))  # a growing when-chain
    for reason, broken in _row_rules(check_ids, volume_text):
        expr = expr.when(broken).then(pl.lit(reason))
    return expr.otherwise(pl.lit(None, pl.String))


def row_bad(*, check_ids: bool = True, volume_text: bool = True) -> pl.Expr:
    """Whether a row breaks any rule: row_reason is not null, as one boolean pass (no text
    column for the rows that break none)."""
    rules = _row_rules(check_ids, volume_text)
    # A rule that cannot be judged (null) is not broken, as in row_reason's when-chain.
    return pl.any_horizontal(broken for _, broken in rules).fill_null(False)


def _row_detail() -> pl.Expr:
    reason = pl.col("reason")
    raw = {
        # Control characters shown as '?': a detail is one printable line.
        "bad_entity_id": pl.format(
            "entity_id '{}': {}",
            pl.col(ENTITY).fill_null("<null>").str.replace_all(CONTROL, "?"),
            entity_id_problem(),
        ),
        "bad_date": pl.format("date '{}'", pl.col("_date_raw").fill_null("<null>")),
        "bad_close": pl.format(
            "close '{}'",
            pl.coalesce(pl.col("_close_raw"), pl.col("close").cast(pl.String), pl.lit("<null>")),
        ),
        "nonfinite_close": pl.format("close {}", pl.col("close")),
        "nonpositive_close": pl.format("close {}", pl.col("close")),
        "bad_volume": pl.format(
            "volume '{}'",
            pl.coalesce(pl.col("_volume_raw"), pl.col("volume").cast(pl.String), pl.lit("<null>")),
        ),
    }
    expr: Any = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))  # a growing when-chain
    for code, text in raw.items():
        expr = expr.when(reason == code).then(text)
    return expr.otherwise(pl.lit(None, pl.String)).alias("detail")


def _range_ok() -> pl.Expr:
    hi, lo, c = pl.col("high"), pl.col("low"), pl.col("close")
    return (
        hi.is_not_null()
        & lo.is_not_null()
        & hi.is_finite()
        & lo.is_finite()
        & (lo > 0)
        & (lo <= hi)
        & (c >= lo)
        & (c <= hi)
    )


def _entity_rejects(entities: pl.DataFrame, reason: str, detail: pl.Expr) -> pl.DataFrame:
    return entities.select(
        pl.col(ENTITY),
        pl.col("last_date").alias(DATE),
        pl.lit(reason).alias("reason"),
        detail.alias("detail"),
    )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by (entity_id, date, file row), skipping the sort when the file already is."""
    if frame.height and _in_order(frame):
        return frame
    # A folder of yearly files (`stabfrag prices partition`) gives a sorted source file's
    # rows year by year: back in file-row order (an integer sort) they are in order, which
    # a sort on the ids' text takes about four times as long to find.
    if not frame[ROW].is_sorted():
        by_row = frame.sort(ROW)
        if _in_order(by_row):
            return by_row
    return frame.sort([ENTITY, DATE, ROW])


def _in_order(frame: pl.DataFrame) -> bool:
    """Whether `frame` is sorted by (entity_id, date, file row), each step strictly."""
    e, d, r = pl.col(ENTITY), pl.col(DATE), pl.col(ROW)
    step = ((d > d.shift(1)) | ((d == d.shift(1)) & (r > r.shift(1)))).fill_null(True)
    ids = frame[ENTITY]
    if ids.null_count() == 0 and ids.is_sorted():
        # Ids in order: a row that does not step forward in (date, row) must start a new
        # entity. Text is compared only there, not at every row.
        back = frame.select(~step).to_series().arg_true()
        return bool((ids.gather(back) != ids.gather(back - 1)).all())
    in_order = (e > e.shift(1)) | ((e == e.shift(1)) & step)
    return bool(frame.select(in_order.fill_null(True).all()).item())


def _per_entity(good: pl.DataFrame, starts: np.ndarray) -> pl.DataFrame:
    """Each entity's rows `n` and last date, one row per run of `starts` (rows sorted by
    entity_id, date): read at the ends of each run, not grouped by the text."""
    if good.height == 0:
        return pl.DataFrame(
            schema={ENTITY: good.schema[ENTITY], "n": pl.UInt32(), "last_date": pl.Date()}
        )
    lengths = run_lengths(starts, good.height)
    return pl.DataFrame(
        {
            ENTITY: good[ENTITY].gather(starts),
            "n": pl.Series(lengths, dtype=pl.UInt32),
            "last_date": good[DATE].gather(starts + lengths - 1),
        }
    )


@dataclass(frozen=True)
class _Cleaned:
    good: pl.DataFrame  # kept rows, sorted
    row_rejects: pl.DataFrame
    range_dropped_dates: pl.Series  # dates of kept rows whose range was dropped
    spread_dropped_dates: pl.Series  # dates of kept rows whose negative spread was dropped
    ticks: pl.DataFrame  # bad ticks known after their own date
    starts: np.ndarray  # each entity's first row in `good`


def _take_ticks(
    good: pl.DataFrame, starts: np.ndarray, bad_tick: float
) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame, pl.DataFrame]:
    """Take the bad ticks out of the kept rows: the rows and their starts without them,
    the ticks' reject rows, and the ticks known only after their own date."""
    found = find_ticks(good, bad_tick, starts=starts)
    tick_rows = good[found["_i"]].with_columns(
        pl.lit("bad_tick").alias("reason"),
        found["_tick"].alias("detail"),
        pl.coalesce(found["_known_on"], pl.col(DATE)).alias("_known_on"),
    )
    ticks = tick_rows.filter(pl.col("_known_on") > pl.col(DATE)).select(
        ENTITY, DATE, "close", *OPTIONAL_PRICE_COLUMNS, "_known_on"
    )
    if found.height:  # (a copy of every kept row: only when there is a tick to take out)
        keep = np.ones(good.height, dtype=bool)
        keep[found["_i"].to_numpy()] = False
        good = good.filter(pl.Series(keep))
        starts = kept_starts(starts, keep)
    return good, starts, tick_rows, ticks


def _unknowns(good: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
    """The kept rows with their unusable parts made unknown: a range that breaks the rules,
    a NaN volume, an infinite, NaN or negative spread. Returns the rows and the dates of
    those whose range or negative spread was dropped (counted)."""
    has_range = pl.col("high").is_not_null() | pl.col("low").is_not_null()
    range_bad = has_range & ~_range_ok()
    range_dropped_dates = good.filter(range_bad)[DATE]
    spread = pl.col("spread_bps")
    spread_unknown = spread.is_infinite() | (spread < 0) | spread.is_nan()
    spread_dropped_dates = good.filter(spread < 0)[DATE]
    # NaN volume or spread means unknown, as null does; so does an infinite spread, and a
    # negative one (counted: a credit spread over the risk-free rate is not below 0).
    # Columns with nothing to drop are kept as they are, not rewritten.
    flags = good.select(
        range_bad.any().alias("range"),
        pl.col("volume").is_nan().any().alias("volume"),
        spread_unknown.any().alias("spread"),
    ).row(0, named=True)
    fixes = []
    if flags["range"]:
        fixes += [pl.when(range_bad).then(None).otherwise(c).alias(c) for c in ("high", "low")]
    if flags["volume"]:
        fixes.append(pl.col("volume").fill_nan(None))
    if flags["spread"]:
        fixes.append(pl.when(spread_unknown).then(None).otherwise(spread).alias("spread_bps"))
    if fixes:
        good = good.with_columns(fixes)
    return good, range_dropped_dates, spread_dropped_dates


def _clean_rows(raw: pl.DataFrame, check_ids: bool, bad_tick: float) -> _Cleaned:
    # The reasons are written for the rows that break a rule alone: a text column as long
    # as the read cost more than every rule together.
    rules = {"check_ids": check_ids, "volume_text": "_volume_raw" in raw.columns}
    is_bad = raw.select(row_bad(**rules)).to_series()
    bad = text_columns(raw.filter(is_bad)).with_columns(row_reason(**rules).alias("reason"))
    # (A filter that drops nothing still cuts every column into pieces, which the next
    # step then copies into one: most reads have no bad row and no duplicate.)
    good = raw.filter(~is_bad) if bad.height else raw
    # Duplicates are judged among rows that passed the row rules: the first in file order wins.
    good = _sorted(good)
    starts = entity_starts(good[ENTITY])  # the one comparison of the ids' text
    days = good[DATE].cast(pl.Int32).to_numpy()
    is_dup = continues(starts, good.height)
    is_dup[1:] &= days[1:] == days[:-1]
    # The row each duplicate loses to: the run's first row, the one kept.
    dups = good.filter(is_dup).with_columns(pl.lit("duplicate").alias("reason"))
    if dups.height:  # (most reads have none: no pass over the rows for them)
        kept = pl.when(pl.Series(~is_dup)).then(pl.col(ROW)).forward_fill()
        dups = dups.with_columns(good.select(kept).to_series().filter(is_dup).alias("_kept_row"))
        good = good.filter(~is_dup)
        starts = kept_starts(starts, ~is_dup)
    else:
        dups = dups.with_columns(pl.lit(None, pl.Int64).alias("_kept_row"))
    good = good.select(ROW, ENTITY, DATE, "close", *OPTIONAL_PRICE_COLUMNS)
    good, starts, tick_rows, ticks = _take_ticks(good, starts, bad_tick)
    good = good.drop(ROW)
    good, range_dropped_dates, spread_dropped_dates = _unknowns(good)
    row_rejects = (
        pl.concat(
            [
                bad.with_columns(_row_detail()),
                dups.with_columns(
                    pl.format(
                        "same entity_id and date as data row {}, which is kept (this is "
                        "data row {}; data rows count from 1, the header not counted)",
                        pl.col("_kept_row") + 1,
                        pl.col(ROW) + 1,
                    ).alias("detail")
                ),
                tick_rows,
            ],
            how="diagonal_relaxed",
        )
        .sort(ROW)
        .select(ENTITY, DATE, "reason", "detail")
    )
    return _Cleaned(good, row_rejects, range_dropped_dates, spread_dropped_dates, ticks, starts)


def validate(
    raw: pl.DataFrame, *, min_prices: int = MIN_PRICES, bad_tick: float = DEFAULT_MULTIPLE
) -> Validated:
    """Apply every SPEC §2 row rule, the bad-tick rule (`bad_tick` is its multiple, 0 turns
    it off) and the minimum history; return clean sorted prices and reconciled rejects.
    Staleness depends on an as-of date: engine.requests applies it."""
    all_ids, check_ids = judge_ids(raw.select(pl.col(ENTITY).unique()))
    cleaned = _clean_rows(raw, check_ids, bad_tick)
    good, row_rejects, starts = cleaned.good, cleaned.row_rejects, cleaned.starts
    per_entity = _per_entity(good, starts)
    no_rows = all_ids.join(per_entity, on=ENTITY, how="anti").with_columns(
        pl.lit(None, pl.Date).alias("last_date")
    )
    reason, detail = entity_rule(pl.col("n"), pl.col("last_date"), min_prices=min_prices)
    judged = per_entity.with_columns(reason.alias("reason"), detail.alias("detail"))
    ent_rej = pl.concat(
        [
            _entity_rejects(no_rows, "no_valid_rows", pl.lit("every row was rejected")),
            judged.filter(pl.col("reason").is_not_null()).select(
                ENTITY, pl.col("last_date").alias(DATE), "reason", "detail"
            ),
        ]
    ).sort(ENTITY)
    kept_runs = judged["reason"].is_null().to_numpy()
    if not kept_runs.all():  # (judged has a row per run, in run order)
        keep = np.repeat(kept_runs, run_lengths(starts, good.height))
        good = good.filter(pl.Series(keep))
        starts = kept_starts(starts, keep)
    rejects = pl.concat([row_rejects, ent_rej], how="diagonal_relaxed").select(
        [pl.col(n).cast(t) for n, t in REJECTS_SCHEMA.items()]
    )
    return Validated(
        prices=good.select(ENTITY, DATE, "close", *OPTIONAL_PRICE_COLUMNS),
        rejects=rejects,
        rows_in=raw.height,
        rows_rejected=row_rejects.height,
        range_dropped_dates=cleaned.range_dropped_dates,
        spread_dropped_dates=cleaned.spread_dropped_dates,
        entities_in=all_ids.height,
        entities_rejected=counts_by_reason(ent_rej),
        ticks=cleaned.ticks.rename({"_known_on": "known_on"}),
        # The runs of each history: an entity's rows restart after a gap (MAX_GAP_DAYS).
        starts=history_starts(starts, good[DATE].cast(pl.Int32).to_numpy(), MAX_GAP_DAYS),
    )
