"""evaluate --plot: ROC curves, per-episode bars and the forward-drawdown IC over time, as
PNG and on one HTML page, drawn by the report's chart stack (analysis.charts, .render).

vl-convert is the optional extra `stabfrag[plot]`; without it --plot is a one-line error.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis import render
from stabfrag.analysis.charts import episodes_spec, ic_spec, roc_spec
from stabfrag.analysis.metrics import named_rows
from stabfrag.analysis.who import FALL
from stabfrag.atomic import writable_folder, write_atomic
from stabfrag.errors import ConfigError

POINTS = 200  # points per ROC curve


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at up to POINTS thresholds. States with
    equal scores are passed together (one threshold cannot split them): all-equal scores
    draw the diagonal, an area of 0.5, as their AUC says."""
    ok = ~np.isnan(scores)
    s, y = scores[ok], positive[ok]
    order = np.argsort(-s, kind="stable")
    tp = np.concatenate([[0], np.cumsum(y[order])])
    fp = np.concatenate([[0], np.cumsum(~y[order])])
    ranked = s[order]
    # Thresholds between distinct scores only: after each run of equal scores.
    cuts = np.r_[0, np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, len(ranked)]
    pick = cuts[np.unique(np.linspace(0, len(cuts) - 1, POINTS).astype(int))]
    return fp[pick] / max(fp[-1], 1), tp[pick] / max(tp[-1], 1)


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib figure and its axes, drawn off screen without pyplot: a notebook's
    plotting backend is left as it is."""
    try:
        import matplotlib  # noqa: F401 (the extra itself: its absence is the one-line error)
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'stabfrag[plot]'") from None
    fig = Figure(figsize=size, dpi=120)
    return fig, fig.subplots()


def plot_folder(folder: Path) -> Path:
    """`--plot`'s folder, refused in one line before any work when the charts cannot be
    drawn (no plot extra) or the folder cannot be written."""
    if not render.available():
        raise ConfigError("--plot needs vl-convert: pip install 'stabfrag[plot]'")
    return writable_folder(folder, "--plot")


def write_plots(
    folder: Path,
    result: dict[str, Any],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    ic_by_date: dict[str, pl.DataFrame] | None = None,
) -> dict[str, str]:
    """Write roc.png, episodes.png, ic.png (with the forward-drawdown IC by date) and
    evaluate.html, whose charts zoom and show their values, into `folder`; return their
    paths."""
    plot_folder(folder)
    aucs = {name: result["figures"][name]["state_auc"] for name in curves}
    charts = {"roc": roc_spec(curves, aucs), "episodes": episodes_spec(result["per_episode"])}
    if ic_by_date:
        charts["ic"] = ic_spec(ic_by_date, FALL)
    paths = {name: str(_write_png(folder / f"{name}.png", spec)) for name, spec in charts.items()}
    text = _page(result, charts)
    page = write_atomic(folder / "evaluate.html", lambda p: p.write_text(text))
    return {**paths, "html": str(page)}


def _write_png(path: Path, spec: dict[str, Any]) -> Path:
    image = render.png(spec)
    return write_atomic(path, lambda p: p.write_bytes(image))


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _page(result: dict[str, Any], charts: dict[str, Any]) -> str:
    names = list(result["figures"])
    figures = ["state_auc", "analog_precision_at_10", "calm_to_high", "shock_type_accuracy"]
    match = result["episode_match"]
    rows = [(f, [result["figures"][n][f] for n in names]) for f in figures] + [
        ("episode match top 1", [match[n]["all"]["top1"] for n in names]),
        ("episode match top 3", [match[n]["all"]["top3"] for n in names]),
        ("episode match macro top 1", [match[n]["macro"]["top1"] for n in names]),
        ("episode match macro top 3", [match[n]["macro"]["top3"] for n in names]),
        ("cross-section AUC", [result["cross_section"][n]["mean_auc"] for n in names]),
        ("library: same-type nearest", [result["library"][n]["same_type_nearest"] for n in names]),
    ]
    who = result.get("who", {})
    rows += [
        (label, [who.get(n, {}).get(key) for n in names])
        for label, key in (("who: rank IC", "ic"), ("who: rank IC before falls", "ic_before_falls"))
    ]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{html.escape(f)}</td>" + "".join(f"<td>{_cell(v)}</td>" for v in vals) + "</tr>"
        for f, vals in rows
    )
    s = result["states"]
    definition = html.escape(result["cross_section"]["definition"])
    intro = (
        f"<p>{s['stress']:,} stress and {s['calm']:,} calm states; analog base rate "
        f"{result['analog_base_rate']:.3f}. Cross-section: {definition}.</p>"
        f"<table><tr><th>figure</th>{head}</tr>{body}</table>"
    )
    title = f"Validity: {Path(result['out']).name}, {Path(result['labels']).name}"
    if "exposed_to" in result["universe"]:
        title += f", exposed to {result['universe']['exposed_to']}"
    sections: list[tuple[str, Any]] = [("", intro), ("", charts["roc"]), ("", charts["episodes"])]
    if "ic" in charts:
        sections.append(("", charts["ic"]))
    sections.append(("", _named(result, names[0])))
    sections.append(("", _moves(result.get("profile_branch"))))
    return render.page(title, sections)


def _named(result: dict[str, Any], model: str) -> str:
    """Which: what the built model names each labelled episode (its states' nearest
    historical scenario) and each labelled shock type (their nearest scenario's type)."""
    episodes, types = named_rows(result, model)
    rows = episodes + types
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return (
        f"<h2>Which: what {html.escape(model)} names each episode and shock type</h2>"
        "<p>The share of a labelled episode's states whose nearest historical scenario is "
        "each one, and of a labelled shock type's stress states whose nearest scenario has "
        "each type; the most frequent first.</p>"
        f"<table><tr><th>labelled</th><th>named as</th></tr>{body}</table>"
    )


def _moves(branch: dict[str, Any] | None) -> str:
    """The profile branch's moves on calm dates: who it brings nearest the HIGH scenarios
    and who furthest, at each weight scored."""
    if not branch:
        return ""
    parts = [
        "<h2>Profile branch: fragility moves on calm dates</h2>",
        f"<p>Mean change of each entity's fragility over its calm states "
        f"({branch['calm_states']:,} calm states), with profiles against without.</p>",
    ]
    for key, value in branch.items():
        if not key.startswith("prof="):
            continue
        rows = "".join(
            f"<tr><td>{html.escape(str(n['entity_id']))}</td><td>{_cell(n['move'])}</td>"
            f"<td>{html.escape(str(f['entity_id']))}</td><td>{_cell(f['move'])}</td></tr>"
            for n, f in zip(value["nearest"], value["furthest"], strict=False)
        )
        parts.append(
            f"<h3>{html.escape(key)} (mean move {_cell(value['mean_move'])})</h3>"
            "<table><tr><th>moved nearest HIGH</th><th>move</th><th>moved furthest</th>"
            f"<th>move</th></tr>{rows}</table>"
        )
    return "\n".join(parts)
