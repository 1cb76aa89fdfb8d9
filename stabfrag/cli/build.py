"""Commands that build the joint space: build, backfill, demo."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import (
    BadTickOpt,
    EntitiesOpt,
    Executor,
    FactorsOpt,
    Freq,
    JsonOpt,
    MarketOpt,
    MaxRejectOpt,
    MixedOpt,
    ModelDirOpt,
    ModelOpt,
    OutOpt,
    PgDsnOpt,
    PgReplaceOpt,
    PgStagingOpt,
    PgTableOpt,
    PricesOpt,
    ProfilesOpt,
    ScenariosOpt,
    StaleOpt,
    WaitOpt,
    WeightsOpt,
    app,
    parse_date,
    print_frame,
    reject_gate,
    run_options,
)
from stabfrag.config import BAD_TICK_MULTIPLE, DEFAULT_MEMORY, MAX_STALENESS_DAYS
from stabfrag.engine.progress import ProgressFn
from stabfrag.engine.summary import RunSummary
from stabfrag.schema import date_span


def _run(
    start: Callable[[ProgressFn], RunSummary], *, as_json: bool, max_reject_share: float
) -> None:
    """Run with a progress display, print the summary, exit 3 above the reject share."""
    from stabfrag.engine.progress import reporter
    from stabfrag.engine.summary import emit

    with reporter() as progress:
        summary = start(progress)
    result = summary.as_dict()
    emit(result, as_json=as_json)
    reject_gate(result["rows_rejected"], result["rows_read"], max_reject_share)


@app.command()
def build(
    as_of: Annotated[str, typer.Option("--as-of", help="As-of date, YYYY-MM-DD.")],
    prices: PricesOpt,
    entities: EntitiesOpt = None,
    profiles: ProfilesOpt = None,
    scenarios: ScenariosOpt = None,
    out: OutOpt = Path("stabfrag-out"),
    model_dir: ModelDirOpt = None,
    model: ModelOpt = None,
    market: MarketOpt = None,
    factors: FactorsOpt = None,
    weights: WeightsOpt = None,
    max_staleness_days: StaleOpt = MAX_STALENESS_DAYS,
    bad_tick: BadTickOpt = BAD_TICK_MULTIPLE,
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    pg_staging: PgStagingOpt = False,
    pg_replace_slice: PgReplaceOpt = False,
    wait: WaitOpt = False,
    allow_mixed_models: MixedOpt = False,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
) -> None:
    """Build the joint space as of one date: Parquet partitions and stabfrag.duckdb."""
    from stabfrag import api

    day = parse_date(as_of, "--as-of")
    options = run_options(locals())
    _run(
        lambda progress: api.build(prices, as_of=day, out=out, progress=progress, **options),
        as_json=as_json,
        max_reject_share=max_reject_share,
    )


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First as-of date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last as-of date, YYYY-MM-DD.")],
    prices: PricesOpt,
    freq: Annotated[
        Freq,
        typer.Option("--freq", help="Every trading day, or the last of each week or month."),
    ] = Freq.month,
    entities: EntitiesOpt = None,
    profiles: ProfilesOpt = None,
    scenarios: ScenariosOpt = None,
    out: OutOpt = Path("stabfrag-out"),
    model_dir: ModelDirOpt = None,
    model: ModelOpt = None,
    market: MarketOpt = None,
    factors: FactorsOpt = None,
    weights: WeightsOpt = None,
    max_staleness_days: StaleOpt = MAX_STALENESS_DAYS,
    bad_tick: BadTickOpt = BAD_TICK_MULTIPLE,
    memory: Annotated[
        str,
        typer.Option(
            "--memory",
            help="Memory budget of a chunk (e.g. 4GB or 4GiB, binary units): sets "
            "--chunk-days when it is not given.",
        ),
    ] = DEFAULT_MEMORY,
    chunk_days: Annotated[
        int | None,
        typer.Option("--chunk-days", min=1, help="Calendar days of as-of dates per chunk."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip complete partitions (whose files have the sizes their manifest "
            "records; a damaged one is built again).",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="With --resume: check every sealed file's checksum too."),
    ] = False,
    executor: Annotated[
        Executor,
        typer.Option(
            "--executor",
            help="local (this process) or ray (chunk x entity-block tasks; needs stabfrag[ray]).",
        ),
    ] = Executor.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join: auto or ray://HOST:10001 (default: start Ray here).",
        ),
    ] = None,
    entity_blocks: Annotated[
        int,
        typer.Option(
            "--entity-blocks", min=1, help="With --executor ray: entity blocks per date chunk."
        ),
    ] = 1,
    pg_dsn: PgDsnOpt = None,
    pg_table: PgTableOpt = "joint_embeddings",
    pg_staging: PgStagingOpt = False,
    pg_replace_slice: PgReplaceOpt = False,
    wait: WaitOpt = False,
    allow_mixed_models: MixedOpt = False,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
) -> None:
    """Build every as-of date of a range in one pass per chunk, resumable."""
    from stabfrag import api

    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    options = run_options({**locals(), "executor": executor.value})
    _run(
        lambda progress: api.backfill(
            prices,
            start=first,
            end=last,
            freq=freq.value,
            out=out,
            memory=memory,
            chunk_days=chunk_days,
            progress=progress,
            **options,
        ),
        as_json=as_json,
        max_reject_share=max_reject_share,
    )


@app.command()
def demo(
    out: OutOpt = Path("stabfrag-out"),
    entities: Annotated[int, typer.Option("--entities", min=10)] = 500,
    days: Annotated[int, typer.Option("--days", min=400)] = 2520,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
    model: ModelOpt = None,
) -> None:
    """Generate a synthetic market (with its factor series), build its latest date with
    them declared, show the 10 most fragile entities; then the same inside the market's
    deepest crash, with the shock type each is nearest."""
    from stabfrag import api, synth
    from stabfrag.atomic import make_folder
    from stabfrag.synth.episodes import deepest_crash
    from stabfrag.synth.shocks import FACTOR_IDS

    make_folder(out)
    market = synth.generate(entities=entities, days=days, seed=seed, factors=True)
    paths = synth.write_market(market, out / "market")
    as_of = date_span(market.prices["date"])[1]
    typer.echo(
        f"generated {market.prices.height:,} price rows for {entities} entities and "
        f"{len(FACTOR_IDS)} factor series (declared with --factors) "
        f"into {paths['prices']}"
    )
    build = partial(
        api.build,
        paths["prices"],
        out=out,
        entities=paths["entities"],
        model=model,
        factors=FACTOR_IDS,
    )
    summary = build(as_of=as_of)
    typer.echo(
        f"built {summary.states_out} entity states and {summary.scenario_rows} scenarios "
        f"as of {as_of} into {out} in {sum(summary.timings.seconds.values()):.1f}s"
    )
    why = summary.tally.entities_rejected
    if why:  # the generator lists some entities late: they have too short a history yet
        reasons = ", ".join(f"{k}={n}" for k, n in sorted(why.items()))
        typer.echo(f"{sum(why.values())} entities without a state ({reasons}; see rejects)")
    _most_fragile(out, as_of, "nearest_similarity")
    crash = deepest_crash(market.events)
    if crash is not None:  # a date that is not calm: the space says when, and which
        event_id, start, end = crash
        trading = market.prices["date"]
        inside = trading.filter(trading <= start + (end - start) / 2).max()  # a trading day
        assert isinstance(inside, dt.date)
        build(as_of=inside)
        typer.echo(
            f"built {inside}, inside the market's deepest crash ({event_id}, {start} to {end})"
        )
        _most_fragile(out, inside, "nearest_shock_type")
    typer.echo(
        f"next: stabfrag query fragile --out {out}\n"
        f"      stabfrag report --out {out} --html {out / 'report.html'}\n"
        f'      stabfrag sql "SELECT entity_id, fragility FROM joint_embeddings '
        f"WHERE kind = 'entity' ORDER BY fragility DESC LIMIT 5\" --out {out}"
    )


def _most_fragile(out: Path, as_of: dt.date, last_column: str) -> None:
    """The date's 10 most fragile entities with their nearest scenario, as a table."""
    from stabfrag import api

    top = api.open(out).fragile(as_of, top_n=10)
    columns = ("entity_id", "fragility", "nearest_scenario", last_column)
    print_frame(top.select(columns), fmt="table", title=f"10 most fragile entities, {as_of}")
