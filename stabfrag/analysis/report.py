"""The report of one as-of date: an HTML page that works offline, and a PNG of its map.

The page: the joint space's map (zoom, pan, hover, and a search box that highlights an
id), the most fragile entities in a sortable table, one entity's history with the
historical episodes shaded, and the scenario library by shock type. Each chart is a
Vega-Lite spec (analysis.charts) rendered by analysis.render.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis import render
from stabfrag.analysis.charts import SCHEMA, Spec, history_spec, library_spec, map_spec, pca_2d
from stabfrag.analysis.query import check_date, check_entity, run_sql
from stabfrag.atomic import writable_file, write_atomic
from stabfrag.errors import ConfigError
from stabfrag.scenarios.library import load_library
from stabfrag.sinks.dataset import read_manifest, read_table, read_tables

TOP_N = 20
DRIVERS = ("vol_21", "vol_252", "dd_252")  # features the risk score leans on most
DRIVERS_NOTE = (
    '<p class="note">Beside each fragility, the state\'s annualised volatility over 21 and '
    "252 days and its drawdown from the 252-day high, from the features table.</p>"
)
INTRO = (
    "Each entity state and each scenario is a 384-dimensional unit vector; the map shows "
    "the first two principal components of all of them (their share of the variance on "
    "the axes), so nearby points are similar states. Circles are entity states, coloured "
    "by fragility (their cosine similarity to the nearest HIGH-severity scenario); black "
    "squares are scenarios, the HIGH ones named. Drag to pan, scroll to zoom, hover a "
    "point for its details, and type an id in the box to find it."
)


def built_with(manifest: dict[str, Any], missing: tuple[str, ...] = ()) -> str:
    """What the date was built with, in a sentence: the model, its market reference and,
    for a factor model, the factors that name the shock type, and those of them (roles,
    `missing`) that had no state on the date."""
    model = manifest.get("model") or "the default model"
    market = manifest.get("market")
    context = f"the market entity {market}" if market else "the median state of the date"
    factors = manifest.get("factors") or {}
    named = (
        "shock types are named from the factors "
        + ", ".join(f"{role} {entity}" for role, entity in factors.items())
        if factors
        else "no factor series were declared, so shock types are named from prices alone"
    )
    gaps = "".join(
        f" The {role} factor {factors[role]} had no state on this date: its part of the "
        "context reads calm."
        for role in missing
    )
    return f"Built with {model}; each state's market context is {context}; {named}.{gaps}"


def factor_gaps(out: Path, as_of: dt.date, manifest: dict[str, Any]) -> tuple[str, ...]:
    """The declared factors (roles) without a state on `as_of`."""
    factors = manifest.get("factors") or {}
    if not factors:
        return ()
    held = set(read_tables(out, "features", [as_of], columns=["entity_id"])["entity_id"])
    return tuple(role for role, entity in factors.items() if entity not in held)


def map_points(out: Path, as_of: dt.date) -> tuple[pl.DataFrame, np.ndarray]:
    """The joint rows of `as_of` projected to two dimensions, with what the map shows."""
    joint = read_table(out, "joint_embeddings", as_of)
    scenarios = read_table(out, "scenarios", as_of).select("scenario_id", "shock_type", "severity")
    xy, share = pca_2d(joint["vector"].to_numpy())
    points = (
        joint.select(
            pl.coalesce("entity_id", "scenario_id").alias("name"),
            pl.when(pl.col("kind") == "entity")
            .then(pl.lit("entity state"))
            .otherwise(pl.lit("scenario"))
            .alias("kind"),
            "scenario_id",
            pl.col("fragility").cast(pl.Float64),
            pl.col("nearest_scenario_id").alias("nearest_scenario"),
            pl.col("nearest_scenario_similarity").cast(pl.Float64).alias("nearest_similarity"),
        )
        .with_columns(pl.Series("x", xy[:, 0]), pl.Series("y", xy[:, 1]))
        .join(scenarios, on="scenario_id", how="left", maintain_order="left")
        .drop("scenario_id")
    )
    return points, share


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{v:.3f}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        '<p class="note">Click a column to sort by it.</p>'
    )


def _episodes(out: Path, as_of: dt.date) -> pl.DataFrame:
    """The historical episodes of the build's scenario library: episode, start, end."""
    folder = (read_manifest(out, as_of) or {}).get("scenario_library")
    library = load_library(None if folder is None else Path(folder))
    rows = [
        (s.id, s.episode_start, s.episode_end)
        for s in library
        if s.episode_start is not None and s.episode_end is not None
    ]
    schema = {"episode": pl.String, "start": pl.Date, "end": pl.Date}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _history(
    out: Path, as_of: dt.date, entity: str | None, top: pl.DataFrame
) -> list[tuple[str, str | dict]]:  # type: ignore[type-arg]
    """The history section: `entity`, or the most fragile entity of the date (said so)."""
    if entity is None:
        if top.height == 0:
            return []
        entity = str(top["entity_id"][0])
        why = f"the most fragile entity on {as_of}; choose another with --entity"
    else:
        why = "asked for with --entity"
    hist = run_sql(out, "entity_history", {"entity_id": entity})
    note = f'<p class="note">{html.escape(why)}; {hist.height} built dates.</p>'
    spec = history_spec(entity, hist, _episodes(out, as_of), as_of)
    return [(f"{entity} over time", note), ("", spec)]


@dataclass(frozen=True)
class Report:
    """A written report: its page, and its charts, which a notebook shows inline."""

    path: Path
    charts: list[Spec]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # A composed chart takes its variables (the search box) at its top level.
        params = [p for c in self.charts for p in c.get("params", [])]
        parts = [
            {k: v for k, v in c.items() if k not in ("$schema", "params")} for c in self.charts
        ]
        one = {"$schema": SCHEMA, "params": params, "vconcat": parts}
        return {"application/vnd.vegalite.v5+json": one, "text/plain": f"report: {self.path}"}


def build_report(out: Path, as_of: dt.date, target: Path, entity: str | None = None) -> Report:
    """Write the HTML page to `target` and the map to target with suffix .png (with the
    plot extra; without it the page says where its charts would be)."""
    check_date(out, as_of)
    if entity:
        check_entity(out, entity)
    if target.is_dir():  # checked before anything is written beside it
        raise ConfigError(
            f"--html {target} is a folder; name the page, e.g. {target / 'report.html'}"
        )
    writable_file(target, "--html")
    points, share = map_points(out, as_of)
    chart = map_spec(points, share, as_of)
    if render.available():
        png = render.png(chart)
        write_atomic(target.with_suffix(".png"), lambda p: p.write_bytes(png))
    top = run_sql(out, "fragile", {"as_of": as_of, "top_n": TOP_N})
    manifest = read_manifest(out, as_of) or {}
    gaps = factor_gaps(out, as_of, manifest)
    # On a calm date the riskiest states' fragility agrees to four decimals (the risk angle
    # saturates): their volatility and drawdown say what orders them.
    drivers = read_table(out, "features", as_of).select("entity_id", *DRIVERS)
    top = top.join(drivers, on="entity_id", how="left", maintain_order="left")
    columns = [
        "entity_id",
        "fragility",
        *DRIVERS,
        "nearest_high_scenario",
        "nearest_scenario",
        "nearest_similarity",
    ]
    sections: list[tuple[str, str | dict]] = [  # type: ignore[type-arg]
        ("", f'<p class="note">{html.escape(INTRO)}</p>'),
        ("", f'<p class="note">{html.escape(built_with(manifest, gaps))}</p>'),
        ("", chart),
        (f"The {TOP_N} most fragile entities", DRIVERS_NOTE + _table(top.select(*columns))),
        *_history(out, as_of, entity, top),
        ("The scenario library", library_spec(points)),
    ]
    text = render.page(f"Stability/fragility joint space, {as_of}", sections)
    write_atomic(target, lambda p: p.write_text(text))
    return Report(target, [c for _, c in sections if isinstance(c, dict)])
