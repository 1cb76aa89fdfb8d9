"""Commands of the profile branch: profiles build, profiles fit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stabfrag.atomic import writable_folder
from stabfrag.cli.common import (
    App,
    Freq,
    JsonOpt,
    MarketOpt,
    ModelDirOpt,
    ModelOpt,
    PricesOpt,
    StaleOpt,
    fail,
    parse_date,
)
from stabfrag.config import FUNDAMENTALS_STALENESS_DAYS, MAX_STALENESS_DAYS

profiles_app = App(no_args_is_help=True, help="Profile vectors (joint-profile-core-v1).")


@profiles_app.command("build")
def profiles_build(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for profiles.parquet and more.")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="One as-of date, YYYY-MM-DD.")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First as-of date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last as-of date.")] = None,
    freq: Annotated[
        Freq, typer.Option("--freq", help="Every trading day, or the last of each week or month.")
    ] = Freq.month,
    fundamentals: Annotated[
        Path | None,
        typer.Option("--fundamentals", help="entity_id, date, field, value (or wide)."),
    ] = None,
    text_vectors: Annotated[
        Path | None,
        typer.Option("--text-vectors", help="entity_id, as_of_date, 384-dim vector (Parquet)."),
    ] = None,
    fundamentals_staleness_days: Annotated[
        int,
        typer.Option(
            "--fundamentals-staleness-days",
            min=1,
            help="A reported figure older than this is not used.",
        ),
    ] = FUNDAMENTALS_STALENESS_DAYS,
    market: MarketOpt = None,
    model_dir: ModelDirOpt = None,
    model: ModelOpt = None,
    max_staleness_days: StaleOpt = MAX_STALENESS_DAYS,
    as_json: JsonOpt = False,
) -> None:
    """Point-in-time profile vectors from behaviour, fundamentals and text, for --profiles."""
    from stabfrag.asof.calendar import as_of_dates, range_dates
    from stabfrag.engine.summary import emit
    from stabfrag.profiles.run import ProfileConfig, build_profiles

    if (as_of is None) == (start is None and end is None):
        fail("give --as-of, or --start and --end")
    writable_folder(out, "--out")
    if as_of is not None:
        day = parse_date(as_of, "--as-of")
        dates = as_of_dates(prices, day, day, "day")
        if not dates:
            fail(f"{prices}: no prices on {day}")
    else:
        if start is None or end is None:
            fail("give both --start and --end")
        first, last = parse_date(str(start), "--start"), parse_date(str(end), "--end")
        dates = range_dates(prices, first, last, freq.value)
    config = ProfileConfig(
        prices=prices,
        out=out,
        dates=tuple(dates),
        fundamentals=fundamentals,
        text_vectors=text_vectors,
        market=market,
        model_dir=model_dir,
        model=model,
        max_staleness_days=max_staleness_days,
        fundamentals_staleness_days=fundamentals_staleness_days,
    )
    summary = build_profiles(config)
    emit(summary, as_json=as_json)


@profiles_app.command("fit")
def profiles_fit(
    model_dir: Annotated[
        Path, typer.Option("--model-dir", help="Folder for the joint-profile-core-v1 artefact.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Fit joint-profile-core-v1 on synthetic structural markets and write its artefact."""
    from stabfrag.engine.summary import emit
    from stabfrag.fitting.profile import fit_profile

    info = fit_profile(writable_folder(model_dir, "--model-dir"))
    emit(info, as_json=as_json)
