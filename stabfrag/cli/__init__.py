"""Typer wiring only: parse, build a config, call one function, print.

Each module registers its commands on the one app when imported; the import order is
the order `stabfrag --help` lists them in.
"""

from __future__ import annotations

from stabfrag.cli.common import app

# isort: off
from stabfrag.cli import data, build, profiles, scenarios, db, query, index, analysis
# isort: on

app.add_typer(scenarios.scenarios_app, name="scenarios")
app.add_typer(db.db_app, name="db")
app.add_typer(data.prices_app, name="prices")
app.add_typer(query.query_app, name="query")
app.add_typer(index.index_app, name="index")
app.add_typer(profiles.profiles_app, name="profiles")

__all__ = ["analysis", "app", "build", "data", "db", "index", "profiles", "query", "scenarios"]
