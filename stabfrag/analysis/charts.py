"""Every chart, once, as a Vega-Lite specification (a plain dict).

The report and `evaluate --plot` render these offline (analysis.render): an HTML page
with the JavaScript inlined, SVG, and PNG with real fonts; a notebook shows them inline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # a name, never fetched
Spec = dict[str, Any]
FRAGILITY_SCALE = {"scheme": "redyellowblue", "reverse": True}
NO_FRAGILITY = "#9a9a9a"  # a state without fragility (no HIGH scenario): grey, not 0
FRAGILITY_TEXT = "isValid(datum.fragility) ? format(datum.fragility, '.3f') : 'n/a'"


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of the rows, and each one's share of variance."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    total = float((s**2).sum()) or 1.0
    # A component's sign is arbitrary: make the largest loading positive, so a rebuild of
    # the same vectors draws the same map.
    signs = np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())
    signs[signs == 0] = 1
    return x @ (vt[:2].T * signs), s[:2] ** 2 / total


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records (dates as ISO text, NaN as null)."""
    cleaned = frame.with_columns(
        [pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t.is_temporal()]
        + [pl.col(c).fill_nan(None) for c, t in frame.schema.items() if t.is_float()]
    )
    return cleaned.to_dicts()


def map_spec(points: pl.DataFrame, share: np.ndarray, as_of: dt.date) -> Spec:
    """The joint space of one date: entity states coloured by fragility, scenarios as
    squares (the HIGH ones named); zoom and pan with the mouse, hover for the details,
    and the search box highlights every point whose id contains its text.

    `points`: name, kind ("entity state" or "scenario"), x, y, fragility, nearest
    scenario and its similarity, shock_type and severity (scenarios)."""
    x_title = f"PC1 ({share[0]:.0%} of variance)"
    y_title = f"PC2 ({share[1]:.0%} of variance)"
    position = {
        "x": {"field": "x", "type": "quantitative", "title": x_title},
        "y": {"field": "y", "type": "quantitative", "title": y_title},
    }
    tooltip = [
        {"field": "name", "title": "id"},
        {"field": "kind"},
        {"field": "fragility_text", "title": "fragility"},
        {"field": "nearest_scenario", "title": "nearest scenario"},
        {"field": "nearest_similarity", "title": "its similarity", "format": ".3f"},
        {"field": "shock_type", "title": "shock type"},
    ]
    found = "search != '' && indexof(lower(datum.name), lower(search)) >= 0"
    n_scen = int((points["kind"] == "scenario").sum())
    return {
        "$schema": SCHEMA,
        "title": f"Joint space {as_of}: {points.height - n_scen} entity states, {n_scen} scenarios",
        "width": 760,
        "height": 540,
        "data": {"values": _records(points)},
        # A state without fragility (a library with no HIGH scenario) says so on hover.
        "transform": [{"calculate": FRAGILITY_TEXT, "as": "fragility_text"}],
        "params": [
            {
                "name": "search",
                "value": "",
                "bind": {
                    "input": "search",
                    "placeholder": "entity or scenario id",
                    "name": "find ",
                },
            }
        ],
        "layer": _map_layers(position, tooltip, found),
    }


def _map_layers(position: Spec, tooltip: list[Spec], found: str) -> list[Spec]:
    """The map's layers: entity states (zoom and pan here), scenarios, the HIGH ones
    named, and a ring around every point the search finds."""
    return [
        {
            "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
            "transform": [{"filter": "datum.kind == 'entity state'"}],
            # invalid: None keeps the states without fragility (drawn grey, below).
            "mark": {"type": "circle", "size": 22, "opacity": 0.8, "invalid": None},
            "encoding": {
                **position,
                "color": {
                    # A null would take the scale's colour of its lowest value.
                    "condition": {"test": "!isValid(datum.fragility)", "value": NO_FRAGILITY},
                    "field": "fragility",
                    "type": "quantitative",
                    "scale": FRAGILITY_SCALE,
                    "title": "fragility",
                },
                "tooltip": tooltip,
            },
        },
        {
            "transform": [{"filter": "datum.kind == 'scenario'"}],
            "mark": {"type": "square", "size": 70, "color": "#222", "stroke": "white"},
            "encoding": {**position, "tooltip": tooltip},
        },
        {
            "transform": [{"filter": "datum.severity == 'HIGH'"}],
            "mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 10},
            "encoding": {**position, "text": {"field": "name"}},
        },
        {
            "transform": [{"filter": found}],
            "mark": {"type": "point", "size": 260, "stroke": "#000", "strokeWidth": 2.5},
            "encoding": {**position, "tooltip": tooltip},
        },
    ]


def library_spec(points: pl.DataFrame) -> Spec:
    """The scenario library on the same map, coloured by shock type, every one named."""
    scen = points.filter(pl.col("kind") == "scenario")
    position = {
        "x": {"field": "x", "type": "quantitative", "title": "PC1", "scale": {"zero": False}},
        "y": {"field": "y", "type": "quantitative", "title": "PC2", "scale": {"zero": False}},
    }
    return {
        "$schema": SCHEMA,
        "title": "The scenario library, by shock type",
        "width": 760,
        "height": 420,
        "data": {"values": _records(scen)},
        "layer": [
            {
                "params": [{"name": "zoom_library", "select": "interval", "bind": "scales"}],
                "mark": {"type": "square", "size": 90},
                "encoding": {
                    **position,
                    "color": {"field": "shock_type", "type": "nominal", "title": "shock type"},
                    "tooltip": [
                        {"field": "name", "title": "scenario"},
                        {"field": "shock_type"},
                        {"field": "severity"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 9},
                "encoding": {**position, "text": {"field": "name"}},
            },
        ],
    }


def history_spec(
    entity: str, history: pl.DataFrame, episodes: pl.DataFrame, as_of: dt.date
) -> Spec:
    """An entity's fragility and its similarity to its nearest scenario over time, the
    historical episodes shaded, the report's date marked.

    `history`: as_of_date, fragility, nearest_scenario_id, nearest_scenario_similarity;
    `episodes`: episode, start, end."""
    lines = history.select(
        "as_of_date",
        pl.col("nearest_scenario_id").alias("nearest"),
        pl.col("fragility").alias("fragility (nearest HIGH scenario)"),
        pl.col("nearest_scenario_similarity").alias("nearest scenario (any severity)"),
    ).unpivot(index=["as_of_date", "nearest"], variable_name="measure", value_name="similarity")
    x = {"field": "as_of_date", "type": "temporal", "title": None}
    first, last = history["as_of_date"].min(), history["as_of_date"].max()
    shown = episodes.filter((pl.col("end") >= first) & (pl.col("start") <= last))
    return {
        "$schema": SCHEMA,
        "title": f"{entity} over time",
        "width": 900,
        "height": 260,
        "layer": [
            {
                "data": {"values": _records(shown)},
                "mark": {"type": "rect", "color": "#f4cccc", "opacity": 0.6},
                "encoding": {
                    "x": {"field": "start", "type": "temporal"},
                    "x2": {"field": "end"},
                    "tooltip": [{"field": "episode"}],
                },
            },
            {
                "data": {"values": _records(lines)},
                "params": [{"name": "zoom_history", "select": "interval", "bind": "scales"}],
                "mark": {"type": "line", "point": len(history) < 60},
                "encoding": {
                    "x": x,
                    "y": {"field": "similarity", "type": "quantitative", "title": "cosine"},
                    "color": {"field": "measure", "type": "nominal", "title": None},
                    "tooltip": [
                        {"field": "as_of_date", "type": "temporal"},
                        {"field": "measure"},
                        {"field": "similarity", "format": ".3f"},
                        {"field": "nearest", "title": "nearest scenario"},
                    ],
                },
            },
            {
                "data": {"values": [{"as_of_date": as_of.isoformat(), "label": f"as of {as_of}"}]},
                "mark": {"type": "rule", "strokeDash": [3, 3], "color": "#223"},
                "encoding": {"x": x, "tooltip": [{"field": "label"}]},
            },
        ],
        "resolve": {"scale": {"x": "shared"}},
    }


def roc_spec(curves: dict[str, tuple[np.ndarray, np.ndarray]], aucs: dict[str, Any]) -> Spec:
    """ROC curves of each space: stress states found against calm states called stressed."""
    rows = [
        {"space": f"{name} (AUC {aucs[name]:.3f})" if aucs.get(name) is not None else name,
         "fpr": float(f), "tpr": float(t)}
        for name, (fpr, tpr) in curves.items()
        for f, t in zip(fpr, tpr, strict=True)
    ]  # fmt: skip
    return {
        "$schema": SCHEMA,
        "title": "State ROC",
        "width": 520,
        "height": 460,
        "data": {"values": rows},
        "mark": {"type": "line"},
        "encoding": {
            "x": {"field": "fpr", "type": "quantitative", "title": "calm states called stressed"},
            "y": {"field": "tpr", "type": "quantitative", "title": "stress states found"},
            "color": {"field": "space", "type": "nominal", "title": None},
            "order": {"field": "fpr"},
        },
    }


def episodes_spec(per_episode: dict[str, dict[str, Any]]) -> Spec:
    """Each episode's state AUC, one bar per space."""
    rows = [
        {"space": space, "episode": episode[:60], "state_auc": figures.get("state_auc")}
        for space, table in per_episode.items()
        for episode, figures in table.items()
    ]
    return {
        "$schema": SCHEMA,
        "title": "Per episode: its states against every calm state",
        "width": 520,
        "data": {"values": rows},
        "mark": "bar",
        "encoding": {
            "y": {"field": "episode", "type": "nominal", "title": None},
            "yOffset": {"field": "space"},
            "x": {
                "field": "state_auc",
                "type": "quantitative",
                "title": "state AUC",
                "scale": {"domain": [0.4, 1.0]},
            },
            "color": {"field": "space", "type": "nominal", "title": None},
        },
    }


def ic_spec(ic_by_date: dict[str, pl.DataFrame], fall: float) -> Spec:
    """Each score's within-date rank IC with the forward drawdown (a 12-date rolling mean),
    the dates before market-wide falls marked."""
    frames = [
        ic.select(
            "as_of_date",
            pl.lit(name).alias("score"),
            pl.col("ic").fill_nan(None).rolling_mean(12, min_samples=3).alias("ic"),
        )
        for name, ic in ic_by_date.items()
    ]
    falls = next(iter(ic_by_date.values())).filter(pl.col("median_fwd_dd") > fall)
    x = {"field": "as_of_date", "type": "temporal", "title": None}
    return {
        "$schema": SCHEMA,
        "title": "Who gets hurt: within-date rank IC with the forward drawdown (12-date mean)",
        "width": 900,
        "height": 300,
        "layer": [
            {
                "data": {"values": _records(falls.select("as_of_date"))},
                "mark": {"type": "rule", "color": "#f4cccc", "strokeWidth": 3},
                "encoding": {"x": x},
            },
            {
                "data": {"values": _records(pl.concat(frames))},
                "mark": "line",
                "encoding": {
                    "x": x,
                    "y": {"field": "ic", "type": "quantitative", "title": "rank IC"},
                    "color": {"field": "score", "type": "nominal", "title": None},
                },
            },
        ],
    }
