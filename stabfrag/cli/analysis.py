"""Commands that read a built dataset as a whole: report, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import (
    AsOfOpt,
    EntityOpt,
    JsonOpt,
    QueryOut,
    StabfragError,
    app,
    fail,
    latest_as_of,
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
    from stabfrag.analysis.report import build_report

    day = latest_as_of(data, as_of)
    try:
        path = build_report(data, day, target, entity)
    except StabfragError as exc:
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

    from stabfrag.analysis.evaluate import evaluate as run_evaluation

    try:
        result = run_evaluation(
            out, labels, prices=prices, exposed_to=exposed_to, min_corr=min_corr
        )
    except StabfragError as exc:
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
