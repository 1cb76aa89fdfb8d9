"""`stabfrag query`: similarity queries over a built dataset (sql/duckdb/*.sql)."""

from __future__ import annotations

from enum import StrEnum
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


class Among(StrEnum):
    own = "own"
    all = "all"
    others = "others"


@query_app.command("analogs")
def query_analogs(
    entity: Annotated[
        str | None, typer.Option("--entity", help="Entity or market id (its state on --as-of).")
    ] = None,
    out: QueryOut = Path("stabfrag-out"),
    as_of: AsOfOpt = None,
    top: TopOpt = 10,
    min_gap_days: Annotated[int, typer.Option("--min-gap-days", min=0)] = 180,
    among: Annotated[
        Among,
        typer.Option(
            "--among",
            help="own: the entity's own past dates; all: every entity's past states; "
            "others: every other entity's (these two use the analog index when fresh).",
        ),
    ] = Among.own,
    vector: Annotated[
        Path | None,
        typer.Option("--vector", help="A .npy file of 384 numbers to find analogs of."),
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Search every stored vector, not the index.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Past states closest to an entity's state on --as-of (or to --vector): of dates
    before it and at least --min-gap-days before it."""
    from stabfrag import api

    day = latest_as_of(out, as_of)
    if entity is None and vector is None:
        fail("give --entity, or --vector with --among all")
    if vector is not None and among is Among.own:
        fail("--vector has no own past: add --among all (or --among others with --entity)")
    frame = api.open(out).analogs(
        entity,
        as_of=day,
        top_n=top,
        min_gap_days=min_gap_days,
        among=among.value,
        vector=None if vector is None else read_vector(vector),
        exact=exact,
    )
    subject = entity if vector is None else vector.name
    print_frame(frame, fmt=fmt, title=f"analogs of {subject} on {day}")


def read_vector(path: Path) -> object:
    """A query vector from a .npy file, or a one-line refusal."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        fail(f"--vector {path}: not a readable .npy array ({exc})")


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
