"""Commands on input files: validate, generate, calibrate, prices partition."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from stabfrag.atomic import writable_file, writable_folder
from stabfrag.cli.common import (
    App,
    BadTickOpt,
    EntitiesOpt,
    Format,
    JsonOpt,
    MaxRejectOpt,
    OutOpt,
    PricesOpt,
    app,
    fail,
    parse_date,
    print_frame,
    reject_gate,
)
from stabfrag.config import BAD_TICK_MULTIPLE
from stabfrag.errors import InputError

prices_app = App(no_args_is_help=True, help="Prices files.")


@prices_app.command("partition")
def prices_partition(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="New folder for the yearly files.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a prices file as a folder of yearly Parquet files (year=YYYY/part-0.parquet),
    for --prices of many workers: each look-back read opens only the years it needs."""
    from stabfrag.engine.summary import emit
    from stabfrag.ingest.partition import partition_prices

    written = partition_prices(prices, writable_file(out, "--out"))
    emit({"out": str(out), "rows": sum(written.values()), "files": written}, as_json=as_json)


@app.command()
def validate(
    prices: PricesOpt,
    entities: EntitiesOpt = None,
    bad_tick: BadTickOpt = BAD_TICK_MULTIPLE,
    rejects_out: Annotated[
        Path | None,
        typer.Option("--rejects-out", help="Write every reject to this file (.parquet or .csv)."),
    ] = None,
    as_json: JsonOpt = False,
    max_reject_share: MaxRejectOpt = 0.05,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table: the counts and the first rejects; csv, json, ndjson or parquet: "
            "every reject on stdout, the counts on stderr.",
        ),
    ] = Format.table,
) -> None:
    """Check a prices file against the input contract and report the rejects."""
    from stabfrag.engine.summary import emit, validation_summary
    from stabfrag.ingest import prices as inputs
    from stabfrag.ingest.entities import read_entities

    if rejects_out is not None and rejects_out.suffix not in (".parquet", ".csv"):
        fail(f"--rejects-out {rejects_out}: the name must end in .parquet or .csv")
    try:
        checked = inputs.validate(inputs.read_prices(prices), bad_tick=bad_tick)
        if entities is not None:
            read_entities(entities, checked.prices["entity_id"])
    except InputError as exc:
        fail(str(exc))
        return
    summary = validation_summary(checked)
    if rejects_out is not None:
        _write_rejects(checked.rejects, rejects_out)
        summary["rejects_out"] = str(rejects_out)
    if fmt != Format.table:  # the rows are the output; the counts go beside them
        if as_json:
            fail(
                "--json prints the counts; with --format csv|json|ndjson|parquet the "
                "rejects are printed: give one of them"
            )
        print_frame(checked.rejects, fmt=fmt)
        emit(summary, as_json=False, stream=sys.stderr)
    else:
        emit(summary, as_json=as_json)
    if fmt == Format.table and not as_json and checked.rejects.height:
        shown = checked.rejects.head(FIRST_REJECTS)
        more = "" if rejects_out else "; --rejects-out FILE writes them all"
        print_frame(
            shown,
            fmt="table",
            title=f"first {shown.height} of {checked.rejects.height} rejects{more}",
        )
    reject_gate(checked.rows_rejected, checked.rows_in, max_reject_share)


FIRST_REJECTS = 10


def _write_rejects(rejects: object, path: Path) -> None:
    """All rejects, in file order, written atomically as Parquet or CSV."""
    import polars as pl

    from stabfrag.atomic import write_atomic

    assert isinstance(rejects, pl.DataFrame)
    try:
        if path.suffix == ".csv":
            write_atomic(path, lambda p: rejects.write_csv(p))
        else:
            write_atomic(path, lambda p: rejects.write_parquet(p))
    except OSError as exc:
        fail(f"--rejects-out {path}: {exc.strerror or exc}")


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for prices/entities/events.parquet.")],
    entities: Annotated[int, typer.Option("--entities", min=1)] = 500,
    days: Annotated[int, typer.Option("--days", min=2)] = 2520,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
    defects: Annotated[
        bool, typer.Option("--defects", help="Inject bad rows of every kind.")
    ] = False,
    structural: Annotated[
        bool,
        typer.Option(
            "--structural",
            help="Add leveraged and inverse funds and balance-sheet leverage (traits.parquet, "
            "fundamentals.parquet).",
        ),
    ] = False,
    factors: Annotated[
        bool,
        typer.Option(
            "--factors",
            help="Add cross-asset factor series (FACTOR_EQUITY.US, _RATES, _CREDIT, _FX, "
            "_COMMODITY) and market episodes of every shock type of the library.",
        ),
    ] = False,
) -> None:
    """Generate a synthetic market with known crisis events."""
    import dataclasses

    from stabfrag import synth
    from stabfrag.atomic import make_folder

    make_folder(out)
    market = synth.generate(
        entities=entities, days=days, seed=seed, structural=structural, factors=factors
    )
    if defects:
        market = dataclasses.replace(market, prices=synth.inject_defects(market.prices, seed=seed))
    paths = synth.write_market(market, out)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    extra = market.entities.height - entities
    series = f" (+{extra} factor series)" if extra else ""
    typer.echo(
        f"rows: {market.prices.height}, entities: {entities}{series}, days: {days}, seed: {seed}"
    )


@app.command()
def verify(
    out: OutOpt = Path("stabfrag-out"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Check file sizes only, not checksums.")
    ] = False,
) -> None:
    """Check every partition against its manifest: exit 1 naming each damaged or unvouched
    file (then `backfill --resume` builds those dates again)."""
    from stabfrag.sinks.dataset import problems

    if not out.is_dir():
        fail(f"--out {out}: no such folder")
    intact, found = problems(out, checksums=not quick)
    for day, name, what in found:
        typer.echo(f"{day}  {name or '(the date)'}: {what}")
    typer.echo(f"{intact} partitions intact" + (f", {len(found)} problem(s)" if found else ""))
    if found:
        raise typer.Exit(1)


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
    from stabfrag.engine.summary import emit
    from stabfrag.fitting.calibrate import calibrate as fit

    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    if last < first:
        fail("--end is before --start")
    info = fit(
        prices,
        start=first,
        end=last,
        model_dir=writable_folder(model_dir, "--model-dir"),
        description=description or f"{prices.name}, {first} to {last}",
    )
    emit({**info, "model_dir": str(model_dir)}, as_json=as_json)


@app.command()
def fit(
    model_dir: Annotated[Path, typer.Option("--model-dir", help="Folder for the artefacts.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="joint-stab-fragility-v4 (the default model: v3 plus the factor block, from "
            "the folder's v3 or the shipped one), joint-stab-fragility-v3 (v2 plus the risk "
            "angle, from the folder's v2 or the shipped one) or joint-stab-fragility-v2.",
        ),
    ] = "joint-stab-fragility-v4",
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Generator seeds to fit on, comma-separated (default 101,102; v4 "
            "101,102,107,108).",
        ),
    ] = None,
    validation_seed: Annotated[
        int, typer.Option("--validation-seed", help="Generator seed the penalty is chosen on.")
    ] = 103,
    entities: Annotated[
        str | None,
        typer.Option(
            "--entities",
            help="Entities per fitting seed, comma-separated (default 400,250; v4 400 each).",
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=600, help="Trading days per market.")] = 2520,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Solver iterations (v2).")] = 300,
    as_json: JsonOpt = False,
) -> None:
    """Fit a joint model (v4, v3 or v2) on synthetic ground truth and write its artefacts."""
    from stabfrag.engine.summary import emit
    from stabfrag.fitting.v2 import Universe, fit_v2
    from stabfrag.fitting.v3 import fit_v3
    from stabfrag.fitting.v4 import fit_v4
    from stabfrag.model.joint import JOINT_V2, JOINT_V3, JOINT_V4

    if model not in (JOINT_V2, JOINT_V3, JOINT_V4):
        fail(f"--model must be {JOINT_V4}, {JOINT_V3} or {JOINT_V2}")
    seeds = seeds or ("101,102,107,108" if model == JOINT_V4 else "101,102")
    entities = entities or ("400,400,400,400" if model == JOINT_V4 else "400,250")
    try:
        seed_list = [int(s) for s in seeds.split(",")]
        sizes = [int(n) for n in entities.split(",")]
    except ValueError:
        fail("--seeds and --entities take comma-separated whole numbers")
        return
    if len(sizes) != len(seed_list) or min(sizes) < 20:
        fail("--entities needs one size of at least 20 per seed")
    if validation_seed in seed_list:
        fail("--validation-seed must not be one of --seeds")
    writable_folder(model_dir, "--model-dir")
    train = tuple(Universe(s, n, days) for s, n in zip(seed_list, sizes, strict=True))
    validation = Universe(validation_seed, max(sizes), days)
    if model == JOINT_V4:
        info = fit_v4(model_dir, train=train, validation=validation)
    elif model == JOINT_V3:
        info = fit_v3(model_dir, train=train, validation=validation)
    else:
        info = fit_v2(model_dir, train=train, validation=validation, iters=iters)
    emit(info, as_json=as_json)
