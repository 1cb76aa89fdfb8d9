"""Typer wiring only: parse, build a config, call one function, print."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from stabfrag.inputs import InputError
from stabfrag.schema import date_span

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Build the stability/fragility joint space.",
)

PricesOpt = Annotated[Path, typer.Option("--prices", help="Prices file (Parquet or CSV).")]
EntitiesOpt = Annotated[
    Path | None, typer.Option("--entities", help="Entity metadata file (optional).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]
MaxRejectOpt = Annotated[
    float, typer.Option("--max-reject-share", help="Exit 1 when rejected rows exceed this share.")
]


def fail(message: str) -> None:
    """One line on stderr and exit code 2: the way every known error ends."""
    sys.stderr.write(f"stabfrag: {message}\n")
    raise typer.Exit(2)


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"{option} '{text}' is not a date (YYYY-MM-DD)")
        raise


@app.command()
def validate(
    prices: PricesOpt,
    entities: EntitiesOpt = None,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
) -> None:
    """Check a prices file against the input contract and report the rejects."""
    from stabfrag import inputs
    from stabfrag.summary import emit, validation_summary

    try:
        checked = inputs.validate(inputs.read_prices(prices))
        if entities is not None:
            inputs.read_entities(entities, checked.prices["entity_id"])
    except InputError as exc:
        fail(str(exc))
        return
    summary = validation_summary(checked)
    emit(summary, as_json=as_json)
    if checked.rows_rejected > max_reject_share * max(checked.rows_in, 1):
        raise typer.Exit(1)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for prices/entities/events.parquet.")],
    entities: Annotated[int, typer.Option("--entities", min=1)] = 500,
    days: Annotated[int, typer.Option("--days", min=2)] = 2520,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    defects: Annotated[
        bool, typer.Option("--defects", help="Inject bad rows of every kind.")
    ] = False,
) -> None:
    """Generate a synthetic market with known crisis events."""
    from stabfrag import synth

    market = synth.generate(entities=entities, days=days, seed=seed)
    if defects:
        market = synth.Market(
            prices=synth.inject_defects(market.prices, seed=seed),
            entities=market.entities,
            events=market.events,
        )
    paths = synth.write_market(market, out)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"rows: {market.prices.height}, entities: {entities}, days: {days}, seed: {seed}")


def main() -> None:  # pragma: no cover - console entry
    app()


OutOpt = Annotated[Path, typer.Option("--out", help="Output folder.")]
ProfilesOpt = Annotated[Path | None, typer.Option("--profiles", help="Profile vectors (Parquet).")]
ScenariosOpt = Annotated[
    Path | None, typer.Option("--scenarios", help="Scenario library folder (*.toml).")
]
ModelDirOpt = Annotated[
    Path | None, typer.Option("--model-dir", help="Model artefacts folder (default: shipped).")
]
WeightsOpt = Annotated[
    str | None, typer.Option("--weights", help="Branch weights, e.g. stab=1,scen=0.5,prof=0.5.")
]
StaleOpt = Annotated[
    int, typer.Option("--max-staleness-days", min=0, help="Older last price: no state.")
]
PgDsnOpt = Annotated[
    str | None,
    typer.Option(
        "--pg-dsn", envvar="STABFRAG_PG_DSN", help="PostgreSQL DSN to load into.", show_envvar=True
    ),
]
PgTableOpt = Annotated[str, typer.Option("--pg-table", help="Target table (schema.table allowed).")]
PgStagingOpt = Annotated[
    bool,
    typer.Option("--pg-staging", help="Copy into a temporary table first, insert from it."),
]


def _config(params: dict[str, object]) -> object:
    """A BuildConfig from a command's parameters (those BuildConfig has), weights parsed."""
    import dataclasses

    from stabfrag.config import BuildConfig, ConfigError, parse_weights

    names = {f.name for f in dataclasses.fields(BuildConfig)}
    kw = {k: v for k, v in params.items() if k in names}
    try:
        kw["weights"] = parse_weights(params.get("weights"))  # type: ignore[arg-type]
    except ConfigError as exc:
        fail(str(exc))
    return BuildConfig(**kw)  # type: ignore[arg-type]


def _known_errors() -> tuple[type[Exception], ...]:
    from stabfrag.config import ConfigError
    from stabfrag.encoders import ModelError
    from stabfrag.query import QueryError
    from stabfrag.scenarios import ScenarioError
    from stabfrag.sinks.postgres import SinkError

    return (InputError, ModelError, ScenarioError, ConfigError, SinkError, QueryError)


def _run(config: object, dates: list[dt.date], *, as_json: bool, max_reject_share: float) -> None:
    from stabfrag import pipeline
    from stabfrag.progress import reporter
    from stabfrag.summary import emit

    try:
        with reporter(len(dates)) as progress:
            summary = pipeline.run(config, dates, progress=progress)  # type: ignore[arg-type]
    except _known_errors() as exc:
        fail(str(exc))
        return
    result = summary.as_dict()
    emit(result, as_json=as_json)
    if result["rows_rejected"] > max_reject_share * max(result["rows_read"], 1):
        raise typer.Exit(1)


@app.command()
def build(
    as_of: Annotated[str, typer.Option("--as-of", help="As-of date, YYYY-MM-DD.")],
    prices: PricesOpt,
    entities: EntitiesOpt = None,
    profiles: ProfilesOpt = None,
    scenarios: ScenariosOpt = None,
    out: OutOpt = Path("stabfrag-out"),
    model_dir: ModelDirOpt = None,
    weights: WeightsOpt = None,
    max_staleness_days: StaleOpt = 7,
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    pg_staging: PgStagingOpt = False,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
) -> None:
    """Build the joint space as of one date: Parquet partitions and stabfrag.duckdb."""
    day = parse_date(as_of, "--as-of")
    config = _config(locals())
    _run(config, [day], as_json=as_json, max_reject_share=max_reject_share)


@app.command()
def calibrate(
    prices: PricesOpt,
    start: Annotated[str, typer.Option("--start", help="First date of the fitting range.")],
    end: Annotated[str, typer.Option("--end", help="Last date of the fitting range.")],
    model_dir: Annotated[Path, typer.Option("--model-dir", help="Folder for the new artefacts.")],
    description: Annotated[
        str | None, typer.Option("--description", help="What the history is, for the manifest.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit a new calibration on your own history and write new model artefacts."""
    from stabfrag.calibrate import calibrate as fit
    from stabfrag.summary import emit

    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    if last < first:
        fail("--end is before --start")
    try:
        info = fit(
            prices,
            start=first,
            end=last,
            model_dir=model_dir,
            description=description or f"{prices.name}, {first} to {last}",
        )
    except _known_errors() as exc:
        fail(str(exc))
        return
    emit({**info, "model_dir": str(model_dir)}, as_json=as_json)


def _print_frame(frame: object, *, fmt: str, title: str | None = None) -> None:
    """Print a Polars frame as a rich table, CSV or JSON."""
    import polars as pl

    assert isinstance(frame, pl.DataFrame)
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
        return
    if fmt == "json":
        sys.stdout.write(frame.write_json() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in frame.columns:
        table.add_column(name, justify="right" if frame.schema[name].is_numeric() else "left")
    for row in frame.iter_rows():  # display of a few result rows
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First as-of date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last as-of date, YYYY-MM-DD.")],
    prices: PricesOpt,
    freq: Annotated[
        str,
        typer.Option("--freq", help="day, week (last trading day) or month (last trading day)."),
    ] = "month",
    entities: EntitiesOpt = None,
    profiles: ProfilesOpt = None,
    scenarios: ScenariosOpt = None,
    out: OutOpt = Path("stabfrag-out"),
    model_dir: ModelDirOpt = None,
    weights: WeightsOpt = None,
    max_staleness_days: StaleOpt = 7,
    chunk_days: Annotated[
        int, typer.Option("--chunk-days", min=1, help="Calendar days of as-of dates per chunk.")
    ] = 366,
    resume: Annotated[bool, typer.Option("--resume", help="Skip complete partitions.")] = False,
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    pg_staging: PgStagingOpt = False,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
) -> None:
    """Build every as-of date of a range in one pass per chunk, resumable."""
    from stabfrag import states

    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    if last < first:
        fail("--end is before --start")
    if freq not in ("day", "week", "month"):
        fail(f"--freq '{freq}' is not one of day, week, month")
    config = _config(locals())
    try:
        dates = states.as_of_dates(prices, first, last, freq)
    except InputError as exc:
        fail(str(exc))
        return
    if not dates:
        fail(f"{prices}: no trading dates between {first} and {last}")
    _run(config, dates, as_json=as_json, max_reject_share=max_reject_share)


@app.command()
def demo(
    out: OutOpt = Path("stabfrag-out"),
    entities: Annotated[int, typer.Option("--entities", min=10)] = 500,
    days: Annotated[int, typer.Option("--days", min=400)] = 2520,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Generate a synthetic market, build its latest date, show the 10 most fragile entities."""
    from stabfrag import pipeline, synth
    from stabfrag.config import BuildConfig
    from stabfrag.query import run_sql

    market = synth.generate(entities=entities, days=days, seed=seed)
    paths = synth.write_market(market, out / "market")
    as_of = date_span(market.prices["date"])[1]
    typer.echo(
        f"generated {market.prices.height:,} price rows for {entities} entities "
        f"into {paths['prices']}"
    )
    config = BuildConfig(prices=paths["prices"], entities=paths["entities"], out=out)
    summary = pipeline.run(config, [as_of])
    typer.echo(
        f"built {summary.states_out} entity states and {summary.scenario_rows} scenarios "
        f"as of {as_of} into {out} in {sum(summary.timings.seconds.values()):.1f}s"
    )
    top = run_sql(out, "fragile", {"as_of": as_of, "top_n": 10}).select(
        "entity_id", "fragility", "nearest_scenario", "nearest_similarity"
    )
    _print_frame(top, fmt="table", title=f"10 most fragile entities, {as_of}")
    typer.echo(f"query it: duckdb {out / 'stabfrag.duckdb'}")


scenarios_app = typer.Typer(no_args_is_help=True, help="Browse the scenario library.")
app.add_typer(scenarios_app, name="scenarios")
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def _library(folder: Path | None) -> tuple:  # type: ignore[type-arg]
    from stabfrag.scenarios import ScenarioError, load_library

    try:
        return load_library(folder)
    except ScenarioError as exc:
        fail(str(exc))
        raise


@scenarios_app.command("list")
def scenarios_list(scenarios: ScenariosOpt = None, fmt: FormatOpt = "table") -> None:
    """List every scenario: id, kind, shock type, severity, description."""
    from stabfrag.scenarios import library_frame

    frame = library_frame(_library(scenarios)).select(
        "scenario_id",
        "kind",
        "shock_type",
        "severity",
        "price_shock",
        "horizon_days",
        "description",
    )
    _print_frame(frame, fmt=fmt, title="scenario library")


@scenarios_app.command("show")
def scenarios_show(
    scenario_id: Annotated[str, typer.Argument(help="Scenario id, e.g. SCN_GFC_2008.")],
    scenarios: ScenariosOpt = None,
) -> None:
    """Show one scenario in full."""
    import dataclasses
    import difflib
    import json

    lib = {s.id: s for s in _library(scenarios)}
    if scenario_id not in lib:
        close = difflib.get_close_matches(scenario_id, list(lib), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        fail(f"no scenario {scenario_id}{hint}")
    typer.echo(json.dumps(dataclasses.asdict(lib[scenario_id]), indent=2, default=str))


db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL table.")
app.add_typer(db_app, name="db")


@db_app.command("init")
def db_init(
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    print_sql: Annotated[bool, typer.Option("--print", help="Print the DDL, run nothing.")] = False,
) -> None:
    """Create the joint_embeddings table and index (idempotent)."""
    from stabfrag.sinks import postgres

    try:
        if print_sql:
            for stmt in postgres.ddl_statements(pg_table):
                typer.echo(stmt.as_string(None) + ";")
            return
        if not pg_dsn:
            fail("--pg-dsn (or STABFRAG_PG_DSN) is required")
            return
        for line in postgres.init_table(pg_dsn, pg_table):
            typer.echo(f"{pg_table}: {line}")
    except _known_errors() as exc:
        fail(str(exc))


@app.command()
def load(
    out: OutOpt = Path("stabfrag-out"),
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    as_of: Annotated[str | None, typer.Option("--as-of", help="One as-of date.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First as-of date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last as-of date.")] = None,
    pg_staging: PgStagingOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load built Parquet partitions into PostgreSQL (slice replace, idempotent)."""
    from stabfrag.sinks.postgres import load_partitions
    from stabfrag.summary import emit

    if not pg_dsn:
        fail("--pg-dsn (or STABFRAG_PG_DSN) is required")
        return
    if as_of and (start or end):
        fail("give --as-of or --start/--end, not both")
    first_text, last_text = as_of or start, as_of or end
    first = parse_date(first_text, "--start") if first_text else None
    last = parse_date(last_text, "--end") if last_text else None
    try:
        result = load_partitions(out, pg_dsn, pg_table, first=first, last=last, staging=pg_staging)
    except _known_errors() as exc:
        fail(str(exc))
        return
    emit(result, as_json=as_json)


query_app = typer.Typer(no_args_is_help=True, help="Similarity queries (sql/duckdb/*.sql).")
app.add_typer(query_app, name="query")
QueryOut = Annotated[Path, typer.Option("--out", help="Output folder of a build.")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="As-of date, YYYY-MM-DD.")]
EntityOpt = Annotated[str | None, typer.Option("--entity", help="Entity id.")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="Scenario id.")]
TopOpt = Annotated[int, typer.Option("--top", min=1, help="How many rows.")]


def _query(
    out: Path, name: str, params: dict[str, object], fmt: str, title: str, checks: list
) -> None:  # type: ignore[type-arg]
    from stabfrag.query import run_sql

    if fmt not in ("table", "csv", "json"):
        fail(f"--format '{fmt}' is not one of table, csv, json")
    try:
        for check in checks:  # a few existence checks with hints
            check()
        frame = run_sql(out, name, params)
    except _known_errors() as exc:
        fail(str(exc))
        return
    _print_frame(frame, fmt=fmt, title=title)


def _latest(out: Path, as_of: str | None) -> dt.date:
    """The given date, or the newest built one."""
    from stabfrag.sinks.parquet import partitions

    if as_of:
        return parse_date(as_of, "--as-of")
    dates = partitions(out)
    if not dates:
        fail(f"{out}: nothing built yet")
    return dates[-1]


@query_app.command("nearest")
def query_nearest(
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    entity: EntityOpt = None,
    scenario: ScenarioOpt = None,
    top: TopOpt = 10,
    fmt: FormatOpt = "table",
) -> None:
    """Nearest scenarios to an entity state (--entity), or nearest states to a scenario."""
    from stabfrag import query as q

    day = _latest(out, as_of)
    if bool(entity) == bool(scenario):
        fail("give exactly one of --entity or --scenario")
    if entity:
        _query(
            out,
            "nearest_scenarios",
            {"entity_id": entity, "as_of": day, "top_n": top},
            fmt,
            f"scenarios nearest {entity}, {day}",
            [lambda: q.check_date(out, day), lambda: q.check_entity(out, entity, day)],
        )
    else:
        _query(
            out,
            "nearest_entities",
            {"scenario_id": scenario, "as_of": day, "top_n": top},
            fmt,
            f"states nearest {scenario}, {day}",
            [lambda: q.check_date(out, day), lambda: q.check_scenario(out, str(scenario))],
        )


@query_app.command("fragile")
def query_fragile(
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    top: TopOpt = 20,
    fmt: FormatOpt = "table",
) -> None:
    """Fragility ranking for a date: states by similarity to HIGH-severity scenarios."""
    from stabfrag import query as q

    day = _latest(out, as_of)
    _query(
        out,
        "fragile",
        {"as_of": day, "top_n": top},
        fmt,
        f"most fragile, {day}",
        [lambda: q.check_date(out, day)],
    )


@query_app.command("analogs")
def query_analogs(
    entity: Annotated[str, typer.Option("--entity", help="Entity or market id.")],
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    top: TopOpt = 10,
    min_gap_days: Annotated[int, typer.Option("--min-gap-days", min=0)] = 180,
    fmt: FormatOpt = "table",
) -> None:
    """Past dates whose state of the entity is closest to its state on --as-of."""
    from stabfrag import query as q

    day = _latest(out, as_of)
    params = {"entity_id": entity, "as_of": day, "top_n": top, "min_gap_days": min_gap_days}
    _query(
        out,
        "analogs",
        params,
        fmt,
        f"analogs of {entity} on {day}",
        [lambda: q.check_date(out, day), lambda: q.check_entity(out, entity, day)],
    )


@query_app.command("trajectory")
def query_trajectory(
    entity: Annotated[str, typer.Option("--entity", help="Entity id.")],
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario id.")],
    out: QueryOut = Path("stabfrag-out"),
    fmt: FormatOpt = "table",
) -> None:
    """An entity's similarity to one scenario, and its fragility, over time."""
    from stabfrag import query as q

    _query(
        out,
        "trajectory",
        {"entity_id": entity, "scenario_id": scenario},
        fmt,
        f"{entity} against {scenario}",
        [lambda: q.check_entity(out, entity), lambda: q.check_scenario(out, scenario)],
    )


@app.command()
def report(
    as_of: AsOfOpt = None,
    target: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    data: Annotated[Path, typer.Option("--data", help="Output folder of a build.")] = Path(
        "stabfrag-out"
    ),
    entity: EntityOpt = None,
) -> None:
    """Write a self-contained HTML report (and a PNG of its map) for one as-of date."""
    from stabfrag.report import build_report

    day = _latest(data, as_of)
    try:
        path = build_report(data, day, target, entity)
    except _known_errors() as exc:
        fail(str(exc))
        return
    typer.echo(f"report: {path}\nmap: {path.with_suffix('.png')}")


@app.command()
def evaluate(
    labels: Annotated[Path, typer.Option("--labels", help="Labels CSV: start,end,label[,...].")],
    out: QueryOut = Path("stabfrag-out"),
    prices: Annotated[
        Path | None,
        typer.Option("--prices", help="Prices: the original-encoder baseline and --exposed-to."),
    ] = None,
    exposed_to: Annotated[
        str | None,
        typer.Option(
            "--exposed-to",
            help="Keep states whose 252-day return correlation with this entity "
            "(e.g. SPY) is at least --min-corr.",
        ),
    ] = None,
    min_corr: Annotated[
        float, typer.Option("--min-corr", min=-1.0, max=1.0, help="See --exposed-to.")
    ] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Validity figures of a backfilled dataset on labelled stress and calm periods."""
    import json

    from stabfrag.evaluate import LabelError
    from stabfrag.evaluate import evaluate as run_evaluation

    try:
        result = run_evaluation(
            out, labels, prices=prices, exposed_to=exposed_to, min_corr=min_corr
        )
    except (LabelError, *_known_errors()) as exc:  # type: ignore[misc]  # a built tuple
        fail(str(exc))
        return
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    s, u = result["states"], result["universe"]
    if "exposed_to" in u:
        typer.echo(
            f"universe: {u['kept']:,} of {u['labelled_states']:,} labelled states with a "
            f"{u['window_days']}-day return correlation >= {u['min_corr']} to {u['exposed_to']}"
        )
    typer.echo(
        f"{s['stress']:,} stress and {s['calm']:,} calm states "
        f"({s['with_shock_type']:,} with a shock type), {s['analog_queries']:,} analog queries"
    )
    names = list(result["figures"])
    typer.echo(f"{'figure':24}" + "".join(f"{n:>18}" for n in names))
    for fig in ("state_auc", "analog_precision_at_10", "calm_to_high", "shock_type_accuracy"):
        typer.echo(f"{fig:24}" + "".join(f"{result['figures'][n][fig]:18.3f}" for n in names))
    typer.echo(f"{'analog base rate':24}{result['analog_base_rate']:18.3f}")
