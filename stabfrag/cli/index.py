"""`stabfrag index`: the analog index of a built folder (the index extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.cli.common import App, JsonOpt, QueryOut

index_app = App(
    no_args_is_help=True,
    help="The analog index over every entity state (pip install 'stabfrag[index]').",
)


@index_app.command("build")
def index_build(
    out: QueryOut = Path("stabfrag-out"),
    retrain: Annotated[
        bool,
        typer.Option("--retrain", help="Train the lists afresh on a sample of today's history."),
    ] = False,
    lists: Annotated[
        int | None,
        typer.Option("--lists", min=1, help="Lists to train (default: about sqrt(states))."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index every entity state of --out (OUT/analog_index), for query analogs --among."""
    _run(out, update=False, retrain=retrain, lists=lists, as_json=as_json)


@index_app.command("update")
def index_update(out: QueryOut = Path("stabfrag-out"), as_json: JsonOpt = False) -> None:
    """Index the dates built, rewritten or removed since the index was made: the months
    from the first such date on; the result is what index build would write."""
    _run(out, update=True, retrain=False, lists=None, as_json=as_json)


@index_app.command("status")
def index_status(out: QueryOut = Path("stabfrag-out"), as_json: JsonOpt = False) -> None:
    """What the index holds and whether it still matches the partitions (exit 1 if stale
    or missing, for a scheduler)."""
    from stabfrag.engine.summary import emit
    from stabfrag.index.status import status

    summary = status(out)
    emit(summary, as_json=as_json)
    if summary["fresh"] is not True:
        raise typer.Exit(1)


def _run(out: Path, *, update: bool, retrain: bool, lists: int | None, as_json: bool) -> None:
    from stabfrag.engine.summary import emit
    from stabfrag.index.build import build_index
    from stabfrag.logs import LOGGER

    emit(
        build_index(out, update=update, retrain=retrain, lists=lists, progress=LOGGER.info),
        as_json=as_json,
    )
