"""`stabfrag query`: similarity queries over a built dataset (sql/duckdb/*.sql)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import (
    App,
    AsOfOpt,
    EntityOpt,
    Format,
    FormatOpt,
    QueryOut,
    ScenarioOpt,
    TopOpt,
    app,
    fail,
    latest_as_of,
    print_frame,
)

query_app = App(no_args_is_help=True, help="Similarity queries (sql/duckdb/*.sql).")


@query_app.command("nearest")
def query_nearest(
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    entity: EntityOpt = None,
    scenario: ScenarioOpt = None,
    top: TopOpt = 10,
    fmt: FormatOpt = Format.table,
) -> None:
    """Nearest scenarios to an entity state (--entity), or nearest states to a scenario."""
    from stabfrag import api

    day = latest_as_of(out, as_of)
    if bool(entity) == bool(scenario):
        fail("give exactly one of --entity or --scenario")
    frame = api.open(out).nearest(entity=entity, scenario=scenario, as_of=day, top_n=top)
    title = f"scenarios nearest {entity}" if entity else f"states nearest {scenario}"
    print_frame(frame, fmt=fmt, title=f"{title}, {day}")


@query_app.command("fragile")
def query_fragile(
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    top: TopOpt = 20,
    fmt: FormatOpt = Format.table,
) -> None:
    """Fragility ranking for a date: states by similarity to HIGH-severity scenarios."""
    from stabfrag import api

    day = latest_as_of(out, as_of)
    print_frame(api.open(out).fragile(day, top_n=top), fmt=fmt, title=f"most fragile, {day}")


@query_app.command("analogs")
def query_analogs(
    entity: Annotated[str, typer.Option("--entity", help="Entity or market id.")],
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    top: TopOpt = 10,
    min_gap_days: Annotated[int, typer.Option("--min-gap-days", min=0)] = 180,
    fmt: FormatOpt = Format.table,
) -> None:
    """Past dates whose state of the entity is closest to its state on --as-of."""
    from stabfrag import api

    day = latest_as_of(out, as_of)
    frame = api.open(out).analogs(entity, as_of=day, top_n=top, min_gap_days=min_gap_days)
    print_frame(frame, fmt=fmt, title=f"analogs of {entity} on {day}")


@query_app.command("trajectory")
def query_trajectory(
    entity: Annotated[str, typer.Option("--entity", help="Entity id.")],
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario id.")],
    out: QueryOut = Path("stabfrag-out"),
    fmt: FormatOpt = Format.table,
) -> None:
    """An entity's similarity to one scenario, and its fragility, over time."""
    from stabfrag import api

    frame = api.open(out).trajectory(entity, scenario)
    print_frame(frame, fmt=fmt, title=f"{entity} against {scenario}")


@app.command("sql")
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL text, a .sql file, or a shipped query by name (fragile, analogs, "
            "entity_history, nearest_entities, nearest_scenarios, trajectory)."
        ),
    ],
    out: QueryOut = Path("stabfrag-out"),
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="NAME=VALUE, read in the SQL as getvariable('NAME'); repeat for more.",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run SQL over a build's views (joint_embeddings, features, rejects, scenarios), read
    only; no DuckDB shell needed."""
    from stabfrag import api
    from stabfrag.analysis.query import parse_param

    params = dict(parse_param(p) for p in param or [])
    print_frame(api.open(out).sql(query, **params), fmt=fmt)
