"""What every command shares: the app, option types, one-line failures, configs, tables."""

from __future__ import annotations

import datetime as dt
import errno
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from stabfrag import logs
from stabfrag.allocator import tune_allocator
from stabfrag.config import BuildConfig
from stabfrag.errors import (
    EXIT_FAILED,
    EXIT_REJECTS,
    EXIT_USAGE,
    InputError,
    StabfragError,
    first_line,
)


class OneLineErrors(TyperCommand):
    """A command whose expected failures (any StabfragError) end as one line on stderr and
    the error's exit code (errors.py): the one error wrapper of every command."""

    def invoke(self, ctx: Any) -> Any:  # (typer's own click Context)
        try:
            return super().invoke(ctx)
        except StabfragError as exc:
            fail(first_line(exc), code=exc.exit_code)
        except OSError as exc:  # the last line: a disk that filled, a file that vanished
            if exc.errno == errno.EPIPE:  # `| head` closed stdout: click ends quietly
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or first_line(exc)}", code=EXIT_FAILED)


class App(typer.Typer):
    """typer.Typer whose commands are OneLineErrors."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", OneLineErrors)
        return super().command(*args, **kwargs)


def fail(message: str, *, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr and an exit code (2: bad usage): the way every known error ends."""
    sys.stderr.write(f"stabfrag: {message}\n")
    raise typer.Exit(code)


app = App(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich panels show a flag as `--json <bool>`, which reads as if it took
    # a value (and `--json true` is then refused).
    rich_markup_mode=None,
    help="Build the stability/fragility joint space.",
    epilog="Exit codes: 0 done; 1 the run failed (a database or cluster did not answer, a "
    "task failed, a disk filled: a retry may pass); 2 bad usage (a flag, a value, a file "
    "named on the command line); 3 done, with rejects above --max-reject-share.",
)


def _version(value: bool) -> None:
    if value:
        from stabfrag import __version__

        sys.stdout.write(f"stabfrag {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="More on stderr: -v each stage's step (and Ray workers' messages).",
        ),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
) -> None:
    """Build the stability/fragility joint space."""
    tune_allocator()
    logs.configure(verbose=verbose, quiet=quiet)


PricesOpt = Annotated[
    Path,
    typer.Option("--prices", help="Prices file (Parquet or CSV), or a folder of Parquet files."),
]
EntitiesOpt = Annotated[
    Path | None, typer.Option("--entities", help="Entity metadata file (optional).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def _share(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # (NaN fails both comparisons)
        raise typer.BadParameter(f"{value} is not a share between 0 and 1")
    return value


MaxRejectOpt = Annotated[
    float,
    typer.Option(
        "--max-reject-share",
        callback=_share,
        help="Exit 3 when rejected rows exceed this share (between 0 and 1).",
    ),
]


def reject_gate(rejected: int, rows: int, limit: float) -> None:
    """Exit 3, saying the share and the limit, when rejected rows exceed `limit` of `rows`."""
    if rejected > limit * max(rows, 1):
        share = rejected / max(rows, 1)
        sys.stderr.write(
            f"stabfrag: {rejected:,} of {rows:,} rows rejected ({share:.1%}), above "
            f"--max-reject-share {limit:g} ({limit:.1%}); exit {EXIT_REJECTS}\n"
        )
        raise typer.Exit(EXIT_REJECTS)


__all__ = ["InputError", "StabfragError"]


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"{option} '{text}' is not a date (YYYY-MM-DD)")
        raise


OutOpt = Annotated[Path, typer.Option("--out", help="Output folder.")]
ProfilesOpt = Annotated[Path | None, typer.Option("--profiles", help="Profile vectors (Parquet).")]
ScenariosOpt = Annotated[
    Path | None, typer.Option("--scenarios", help="Scenario library folder (*.toml).")
]
ModelDirOpt = Annotated[
    Path | None, typer.Option("--model-dir", help="Model artefacts folder (default: shipped).")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Joint model id, e.g. joint-stab-fragility-v1 (default: the folder's default).",
    ),
]
MarketOpt = Annotated[
    str | None,
    typer.Option(
        "--market",
        help="Market entity whose state is every state's context (default: the median of "
        "the date's states).",
    ),
]
FactorsOpt = Annotated[
    str | None,
    typer.Option(
        "--factors",
        help="Entities that play the market factors, e.g. equity=SPY,rates=TLT,credit=HYG,"
        "fx=UUP,commodity=GLD: a factor model's context (any subset).",
    ),
]
WeightsOpt = Annotated[
    str | None, typer.Option("--weights", help="Branch weights, e.g. stab=1,scen=0.5,prof=0.5.")
]
StaleOpt = Annotated[
    int, typer.Option("--max-staleness-days", min=0, help="Older last price: no state.")
]
BadTickOpt = Annotated[
    float,
    typer.Option(
        "--bad-tick",
        min=0,
        help="Reject as bad_tick a close that jumps and reverts the next day by more than "
        "this many robust daily moves (or lies that far outside its high/low); 0 turns the "
        "rule off.",
    ),
]
PgDsnOpt = Annotated[
    str | None,
    typer.Option(
        "--pg-dsn", envvar="STABFRAG_PG_DSN", help="PostgreSQL DSN to load into.", show_envvar=True
    ),
]
PgTableOpt = Annotated[str, typer.Option("--pg-table", help="Target table (schema.table allowed).")]
PgReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace-slice",
        help="Replace the whole slice (joint type, model, date), not only the entities and "
        "scenarios this load brings.",
    ),
]
MixedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-mixed-models",
        help="Build into a folder whose dates another model built (queries then show model_id).",
    ),
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="If another run is writing into --out, wait for it to end (default: stop, naming it).",
    ),
]
PgStagingOpt = Annotated[
    bool,
    typer.Option("--pg-staging", help="Copy into a temporary table first, insert from it."),
]


def run_options(params: dict[str, Any]) -> dict[str, Any]:
    """The run options (BuildConfig's settings but prices, out and chunk_days) among a
    command's parameters, for stabfrag.build and stabfrag.backfill."""
    import dataclasses

    skip = {"prices", "out", "chunk_days"}
    names = {f.name for f in dataclasses.fields(BuildConfig)} - skip
    return {k: v for k, v in params.items() if k in names}


class Freq(StrEnum):
    """Which as-of dates a range takes: every trading day, or the last of each week or
    month that the data has."""

    day = "day"
    week = "week"
    month = "month"


class Executor(StrEnum):
    """Where a backfill's tasks run."""

    local = "local"
    ray = "ray"


class Format(StrEnum):
    """How a command prints rows."""

    table = "table"
    csv = "csv"
    json = "json"
    ndjson = "ndjson"
    parquet = "parquet"


MAX_TABLE_ROWS = 100  # a table on a terminal; the other formats write every row


def print_frame(frame: object, *, fmt: str, title: str | None = None) -> None:
    """Print a Polars frame as a rich table, CSV (array and struct columns as JSON text),
    JSON, newline-delimited JSON or Parquet (bytes on stdout: redirect it to a file)."""
    import polars as pl

    assert isinstance(frame, pl.DataFrame)
    fmt = Format(fmt).value
    if fmt == "csv":
        sys.stdout.write(_flat(frame).write_csv())
        return
    if fmt in ("json", "ndjson"):
        sys.stdout.write(frame.write_json() + "\n" if fmt == "json" else frame.write_ndjson())
        return
    if fmt == "parquet":
        if sys.stdout.isatty():
            fail("--format parquet writes bytes: redirect stdout to a file")
        frame.write_parquet(sys.stdout.buffer)
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    more = frame.height - MAX_TABLE_ROWS
    table = Table(title=title)
    frame = frame.head(MAX_TABLE_ROWS)
    for name in frame.columns:
        numeric = frame.schema[name].is_numeric()
        if _is_id(name) and frame.schema[name] == pl.String:
            # An id is never cut: its column keeps the longest id's width (up to a point;
            # a longer one folds onto a second line), and the other columns wrap.
            longest = frame[name].drop_nulls().str.len_chars().max()
            width = max(len(name), int(longest) if isinstance(longest, int) else 0)
            table.add_column(name, min_width=min(width, MAX_ID_WIDTH), overflow="fold")
        else:
            table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in frame.iter_rows():
        # Text, not markup: an id like "[/red]" is shown as it is.
        table.add_row(*[Text(_cell(v)) for v in row])
    # Wide enough for the ids and a little of every other column: rich crops a line wider
    # than its console (80 columns off a terminal), and an id must never be cut.
    minimum = Console(width=10_000).measure(table).minimum
    Console(width=max(Console().width, minimum)).print(table)
    if more > 0:
        sys.stdout.write(f"{more:,} more rows; use --format csv or LIMIT\n")


MAX_ID_WIDTH = 32


def _cell(value: object) -> str:
    """A table cell: floats to 4 places, a vector or list by its length (CSV and JSON print
    it whole)."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return f"[{len(value)} values]"
    return str(value)


def _flat(frame: Any) -> Any:
    """The frame with every nested column (a vector, a list, a struct) as JSON text, which
    CSV has no type for."""
    import polars as pl

    nested = [n for n, t in frame.schema.items() if t.is_nested()]
    if not nested:
        return frame
    return frame.with_columns(
        pl.struct(pl.col(n).alias("v")).struct.json_encode().str.slice(5).str.head(-1).alias(n)
        for n in nested
    )


def _is_id(name: str) -> bool:
    """Ids and codes (entity_id, nearest_scenario, shock_type, reason): shown whole."""
    return name.endswith(("_id", "_type", "scenario")) or name in ("id", "reason", "severity")


QueryOut = Annotated[Path, typer.Option("--out", help="Output folder of a build.")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="As-of date, YYYY-MM-DD.")]
EntityOpt = Annotated[str | None, typer.Option("--entity", help="Entity id.")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="Scenario id.")]
TopOpt = Annotated[int, typer.Option("--top", min=1, help="How many rows.")]
FormatOpt = Annotated[
    Format,
    typer.Option("--format", help="How rows are printed (parquet: bytes on stdout)."),
]


def latest_as_of(out: Path, as_of: str | None) -> dt.date:
    """The given date, or the newest built one."""
    from stabfrag.sinks.dataset import partitions

    if as_of:
        return parse_date(as_of, "--as-of")
    dates = partitions(out)
    if not dates:
        fail(f"{out}: nothing built yet")
    return dates[-1]
