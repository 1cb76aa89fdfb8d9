"""Typer wiring only: parse, build a config, call one function, print."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from stabfrag.inputs import InputError

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
