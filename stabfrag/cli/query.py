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


def _query(
    out: Path, name: str, params: dict[str, object], fmt: Format, title: str, checks: list
) -> None:  # type: ignore[type-arg]
    from stabfrag.analysis.query import run_sql

    for check in checks:
        check()
    frame = run_sql(out, name, params)
    print_frame(frame, fmt=fmt, title=title)


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
    from stabfrag.analysis import query as q

    day = latest_as_of(out, as_of)
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
    fmt: FormatOpt = Format.table,
) -> None:
    """Fragility ranking for a date: states by similarity to HIGH-severity scenarios."""
    from stabfrag.analysis import query as q

    day = latest_as_of(out, as_of)
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
    fmt: FormatOpt = Format.table,
) -> None:
    """Past dates whose state of the entity is closest to its state on --as-of."""
    from stabfrag.analysis import query as q

    day = latest_as_of(out, as_of)
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
    fmt: FormatOpt = Format.table,
) -> None:
    """An entity's similarity to one scenario, and its fragility, over time."""
    from stabfrag.analysis import query as q

    _query(
        out,
        "trajectory",
        {"entity_id": entity, "scenario_id": scenario},
        fmt,
        f"{entity} against {scenario}",
        [lambda: q.check_entity(out, entity), lambda: q.check_scenario(out, scenario)],
    )


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
    from stabfrag.analysis.query import parse_param, run_text, sql_text

    params = dict(parse_param(p) for p in param or [])
    frame = run_text(out, sql_text(query), params)
    print_frame(frame, fmt=fmt)
