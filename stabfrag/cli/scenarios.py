"""`stabfrag scenarios`: browse the scenario library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import (
    App,
    Format,
    FormatOpt,
    ScenariosOpt,
    fail,
    print_frame,
)

scenarios_app = App(no_args_is_help=True, help="Browse the scenario library.")


def _library(folder: Path | None) -> tuple:  # type: ignore[type-arg]
    from stabfrag.errors import ScenarioError
    from stabfrag.scenarios.library import load_library

    try:
        return load_library(folder)
    except ScenarioError as exc:
        fail(str(exc))
        raise


@scenarios_app.command("list")
def scenarios_list(scenarios: ScenariosOpt = None, fmt: FormatOpt = Format.table) -> None:
    """List every scenario: id, kind, shock type, severity, description."""
    from stabfrag.scenarios.library import library_frame

    frame = library_frame(_library(scenarios)).select(
        "scenario_id",
        "kind",
        "shock_type",
        "severity",
        "price_shock",
        "horizon_days",
        "description",
    )
    print_frame(frame, fmt=fmt, title="scenario library")


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
