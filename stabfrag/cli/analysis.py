"""Commands that read a built dataset as a whole: report, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stabfrag.cli.common import (
    AsOfOpt,
    EntityOpt,
    JsonOpt,
    QueryOut,
    app,
    fail,
    latest_as_of,
)


@app.command()
def report(
    as_of: AsOfOpt = None,
    out: QueryOut = Path("stabfrag-out"),
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    entity: EntityOpt = None,
) -> None:
    """Write a self-contained HTML report (and a PNG of its map) of a build for one date."""
    from stabfrag import api

    if out.suffix == ".html":
        fail(f"--out names the build folder; write the page with --html {out}")
    day = latest_as_of(out, as_of)
    path = api.open(out).report(html, as_of=day, entity=entity).path
    png = path.with_suffix(".png")
    typer.echo(f"report: {path}" + (f"\nmap: {png}" if png.exists() else ""))


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
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Joint models to score beside the built one, comma-separated, or 'none' "
            "(default: every other joint model of the build's model folder).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Folder for ROC and per-episode PNGs and an HTML page."),
    ] = None,
    profiles: Annotated[
        Path | None,
        typer.Option(
            "--profiles",
            help="Profile vectors: score the built model without and with the profile branch.",
        ),
    ] = None,
    profile_weights: Annotated[
        str | None,
        typer.Option(
            "--profile-weights",
            help="With --profiles: branch weights to score, comma-separated (default: the "
            "model's; 0.05,0.1,0.25 for a model that gives the branch none).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validity figures of a backfilled dataset on labelled stress and calm periods."""
    import json

    from stabfrag.analysis.evaluate import evaluate as run_evaluation

    models = None if compare is None else [m for m in compare.split(",") if m and m != "none"]
    weights = None
    if profile_weights is not None:
        if profiles is None:
            fail("--profile-weights needs --profiles")
        try:
            weights = tuple(float(w) for w in profile_weights.split(","))
        except ValueError:
            fail("--profile-weights takes comma-separated numbers, e.g. 0.1,0.25,0.5")
            return
        if not all(0 < w < float("inf") for w in weights):
            fail("--profile-weights must be finite numbers above 0")
    result = run_evaluation(
        out,
        labels,
        prices=prices,
        exposed_to=exposed_to,
        min_corr=min_corr,
        compare=models,
        plot=plot,
        profiles=profiles,
        profile_weights=weights,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_evaluation(result)


def _print_evaluation(result: dict[str, Any]) -> None:
    """The evaluation's figures as plain lines: one column per model or baseline."""
    from stabfrag.analysis.metrics import GAP_DAYS

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
    rows = [
        (fig, [result["figures"][n][fig] for n in names])
        for fig in (
            "state_auc",
            "analog_precision_at_10",
            "calm_to_high",
            "shock_type_accuracy",
            "shock_type_macro",
        )
    ]
    for kind in sorted({k for n in names for k in result["shock_types"][n]}):
        rows.append((f"  {kind}", [result["shock_types"][n].get(kind) for n in names]))
    rows.append(("episode match top 1", [result["episode_match"][n]["all"]["top1"] for n in names]))
    rows.append(("episode match top 3", [result["episode_match"][n]["all"]["top3"] for n in names]))
    macro = [result["episode_match"][n]["macro"] for n in names]
    rows.append(("episode macro top 1", [m["top1"] for m in macro]))
    rows.append(("episode macro top 3", [m["top3"] for m in macro]))
    rows.append(("cross-section AUC", [result["cross_section"][n]["mean_auc"] for n in names]))
    rows.append(
        ("library: same-type nearest", [result["library"][n]["same_type_nearest"] for n in names])
    )
    width = max(len(n) for n in names) + 2
    typer.echo(f"{'figure':24}" + "".join(f"{n:>{width}}" for n in names))
    for fig, values in rows:
        cells = "".join(f"{'n/a':>{width}}" if v is None else f"{v:>{width}.3f}" for v in values)
        typer.echo(f"{fig:24}{cells}")
    typer.echo(f"{'analog base rate':24}{result['analog_base_rate']:>{width}.3f}")
    typer.echo(f"cross-section: {result['cross_section']['definition']}")
    _print_named(result, names[0])
    for fig, why in result["unavailable"].items():
        typer.echo(f"{fig}: n/a because {why}")
    lonely = s["analog_queries_without_neighbours"]
    if lonely:
        typer.echo(f"{lonely:,} analog queries had no neighbour {GAP_DAYS} days away: left out")
    if "who" in result:
        _print_who(result["who"])
    if "profile_branch" in result:
        _print_moves(result["profile_branch"])
    if "plots" in result:
        typer.echo(f"plots: {result['plots']['html']}")
    for warning in result.get("warnings", []):
        typer.echo(f"stabfrag: warning: {warning}", err=True)


def _print_named(result: dict[str, Any], model: str) -> None:
    """Which: what the built model names each labelled episode and each shock type (the
    most frequent nearest historical scenario, or nearest scenario type, of its states)."""
    from stabfrag.analysis.metrics import named_rows

    episodes, types = named_rows(result, model)
    for rows, what in (
        (episodes, "episodes named by {} (their states' nearest historical scenario):"),
        (types, "shock types named by {} (their stress states' nearest scenario type):"),
    ):
        if rows:
            typer.echo(what.format(model))
        for label, names in rows:
            typer.echo(f"  {label}: {names}")


def _print_who(who: dict[str, Any]) -> None:
    """Who gets hurt: each score's rank IC with the forward drawdown."""
    typer.echo(f"who gets hurt: {who['definition']}")
    scores = {name: f for name, f in who.items() if name != "definition"}
    width = max([34, *(len(name) + 2 for name in scores)])  # "... + profiles (prof=0.25)"
    typer.echo(
        f"{'score':{width}}{'IC':>8}{'before falls':>14}{'dates':>7}{'falls':>7}{'> vol_21':>10}"
    )
    for name, f in scores.items():
        cells = [f.get(k) for k in ("ic", "ic_before_falls")]
        text = "".join(
            f"{'n/a' if v is None else f'{v:.3f}':>{w}}"
            for v, w in zip(cells, (8, 14), strict=True)
        )
        share = f.get("share_of_dates_above_vol_21")
        typer.echo(
            f"{name:{width}}{text}{f['dates']:>7}{f['fall_dates']:>7}"
            f"{'n/a' if share is None else f'{share:.2f}':>10}"
        )


def _print_moves(branch: dict[str, object]) -> None:
    """The entities the profile branch moves nearest and furthest from HIGH, calm dates."""
    for key, value in branch.items():
        if not key.startswith("prof=") or not isinstance(value, dict):
            continue
        nearest = ", ".join(f"{m['entity_id']} {m['move']:+.3f}" for m in value["nearest"][:5])
        furthest = ", ".join(f"{m['entity_id']} {m['move']:+.3f}" for m in value["furthest"][:5])
        typer.echo(f"profiles {key}, calm dates, mean fragility move {value['mean_move']:+.3f}")
        typer.echo(f"  moved nearest HIGH: {nearest}")
        typer.echo(f"  moved furthest: {furthest}")
