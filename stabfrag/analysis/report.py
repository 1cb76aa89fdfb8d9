"""A self-contained HTML report of one as-of date, and a PNG of its map.

The page explains itself: the map with axes, colour bar, legend and the HIGH scenarios
named (stabfrag.analysis.charts), the 20 most fragile entities, and one entity's history
(the most fragile one when none is asked for). Everything is drawn here: inline SVG in the
page, a numpy raster for the PNG; no plotting library, no network.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.analysis.canvas import png_bytes
from stabfrag.analysis.charts import MapData, history_svg, map_png, map_svg, pca_2d
from stabfrag.analysis.query import check_date, check_entity, run_sql
from stabfrag.atomic import write_atomic
from stabfrag.sinks.dataset import read_table


def map_data(out: Path, as_of: dt.date) -> MapData:
    """The joint rows of `as_of` projected to two dimensions, with what the map shows."""
    joint = read_table(out, "joint_embeddings", as_of)
    scenarios = read_table(out, "scenarios", as_of)
    high = set(scenarios.filter(pl.col("severity") == "HIGH")["scenario_id"].to_list())
    is_scen = (joint["kind"] == "scenario").to_numpy()
    raw, share = pca_2d(joint["vector"].to_numpy())
    names = pl.coalesce("entity_id", "scenario_id")
    return MapData(
        as_of=as_of,
        raw=raw,
        share=share,
        fragility=joint["fragility"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        is_scenario=is_scen,
        is_high=is_scen & joint["scenario_id"].is_in(list(high)).fill_null(False).to_numpy(),
        names=joint.select(names.fill_null(""))[:, 0].to_list(),
    )


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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _history(out: Path, as_of: dt.date, entity: str | None, top: pl.DataFrame) -> str:
    """The history section: `entity`, or the most fragile entity of the date (said so)."""
    if entity is None:
        if top.height == 0:
            return ""
        entity = str(top["entity_id"][0])
        why = f"the most fragile entity on {as_of}; choose another with --entity"
    else:
        why = "asked for with --entity"
    hist = run_sql(out, "entity_history", {"entity_id": entity})
    frag, sim = (
        hist[c].cast(pl.Float64).fill_null(np.nan).to_list()
        for c in ("fragility", "nearest_scenario_similarity")
    )
    return (
        f'<h2>{html.escape(entity)} over time</h2><p class="note">{html.escape(why)}; '
        f"{hist.height} built dates.</p>"
        + history_svg(hist["as_of_date"].to_list(), frag, sim, as_of)
    )


def build_report(out: Path, as_of: dt.date, target: Path, entity: str | None = None) -> Path:
    """Write the HTML page to `target` and its map to target with suffix .png."""
    check_date(out, as_of)
    if entity:
        check_entity(out, entity)
    data = map_data(out, as_of)
    png_path = target.with_suffix(".png")
    write_atomic(png_path, lambda p: p.write_bytes(png_bytes(map_png(data))))
    top = run_sql(out, "fragile", {"as_of": as_of, "top_n": 20})
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>stabfrag report {as_of}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }}
.note {{ color: #666; font-size: 13px; max-width: 1000px; }}
</style></head><body>
<h1>Stability/fragility joint space, {as_of}</h1>
<p class="note">Each entity state and each scenario is a 384-dimensional unit vector; the map
shows the first two principal components of all of them (their share of the variance on the
axes), so nearby points are similar states. Circles are entity states, coloured by
fragility (their cosine similarity to the nearest HIGH-severity scenario; see the colour
bar); black squares are scenarios, the HIGH ones named. Hover a point for its name.</p>
{map_svg(data)}
<h2>The 20 most fragile entities</h2>
{
        _table(
            top.select(
                "entity_id",
                "fragility",
                "nearest_high_scenario",
                "nearest_scenario",
                "nearest_similarity",
            )
        )
    }
{_history(out, as_of, entity, top)}
</body></html>
"""
    write_atomic(target, lambda p: p.write_text(page))
    return target
