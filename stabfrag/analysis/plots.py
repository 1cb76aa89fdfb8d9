"""evaluate --plot: ROC curves and per-episode bars as PNG, and one HTML page with both.

matplotlib is the optional extra `stabfrag[plot]`; without it --plot is a one-line error.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stabfrag.analysis.who import FALL
from stabfrag.atomic import write_atomic
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


def write_plots(
    folder: Path,
    result: dict[str, Any],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    ic_by_date: dict[str, pl.DataFrame] | None = None,
) -> dict[str, str]:
    """Write roc.png, episodes.png, ic.png (with the forward-drawdown IC by date) and
    evaluate.html into `folder`; return their paths."""
    _figure((1, 1))  # the extra, or one line before any work
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{Path(result['out']).name}: {Path(result['labels']).name}"
    if "exposed_to" in result["universe"]:
        title += f", exposed to {result['universe']['exposed_to']}"

    fig, ax = _figure((7, 6))
    for name, (fpr, tpr) in curves.items():
        auc = result["figures"][name]["state_auc"]
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})" if auc is not None else name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="calm states called stressed (false positive rate)",
        ylabel="stress states found (true positive rate)",
        title=f"State ROC\n{title}",
    )
    ax.legend(loc="lower right", fontsize=8)
    roc = write_atomic(folder / "roc.png", lambda p: fig.savefig(p, format="png"))

    episodes = sorted({e for table in result["per_episode"].values() for e in table})
    names = list(result["per_episode"])
    fig, ax = _figure((9, 2.2 + 0.55 * max(len(episodes), 1)))
    height = 0.8 / max(len(names), 1)
    y = np.arange(len(episodes))
    for i, name in enumerate(names):
        values = [result["per_episode"][name].get(e, {}).get("state_auc") for e in episodes]
        ax.barh(y + i * height, [np.nan if v is None else v for v in values], height, label=name)
    ax.set_yticks(y + height * (len(names) - 1) / 2, [e[:60] for e in episodes], fontsize=7)
    ax.set(
        xlim=(0.4, 1.0),
        xlabel="state AUC: the episode's states against every calm state",
        title=f"Per episode\n{title}",
    )
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7)
    fig.tight_layout()
    bars = write_atomic(folder / "episodes.png", lambda p: fig.savefig(p, format="png"))

    paths = {"roc": str(roc), "episodes": str(bars)}
    if ic_by_date:
        paths["ic"] = str(_ic_plot(folder, ic_by_date, title))
    page = write_atomic(folder / "evaluate.html", lambda p: p.write_text(_page(result, title)))
    return {**paths, "html": str(page)}


def _ic_plot(folder: Path, ic_by_date: dict[str, pl.DataFrame], title: str) -> Path:
    """Each score's within-date rank IC with the forward drawdown, date by date (a
    12-date rolling mean), with the dates before market-wide falls marked."""
    fig, ax = _figure((10, 4.5))
    for name, ic in ic_by_date.items():
        smooth = ic.select(
            "as_of_date", pl.col("ic").fill_nan(None).rolling_mean(12, min_samples=3)
        )
        ax.plot(smooth["as_of_date"].to_list(), smooth["ic"].to_list(), label=name, linewidth=1.2)
    falls = next(iter(ic_by_date.values())).filter(pl.col("median_fwd_dd") > FALL)
    for day in falls["as_of_date"].to_list():
        ax.axvline(day, color="#f4cccc", linewidth=2, zorder=0)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(
        ylabel="rank IC with the forward drawdown",
        title=f"Who gets hurt: within-date rank IC, 12-date mean (red: before falls)\n{title}",
    )
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path = write_atomic(folder / "ic.png", lambda p: fig.savefig(p, format="png"))
    return path


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _page(result: dict[str, Any], title: str) -> str:
    names = list(result["figures"])
    figures = ["state_auc", "analog_precision_at_10", "calm_to_high", "shock_type_accuracy"]
    rows = [(f, [result["figures"][n][f] for n in names]) for f in figures] + [
        ("episode match top 1", [result["episode_match"][n]["all"]["top1"] for n in names]),
        ("episode match top 3", [result["episode_match"][n]["all"]["top3"] for n in names]),
        ("episode match macro top 1", [result["episode_match"][n]["macro"]["top1"] for n in names]),
        ("episode match macro top 3", [result["episode_match"][n]["macro"]["top3"] for n in names]),
        ("cross-section AUC", [result["cross_section"][n]["mean_auc"] for n in names]),
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
    css = (
        "body{font-family:sans-serif;margin:24px;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child{text-align:left}"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>stabfrag evaluate</title>
<style>{css}</style>
</head><body><h1>Validity: {html.escape(title)}</h1>
<p>{s["stress"]:,} stress and {s["calm"]:,} calm states; analog base rate
{result["analog_base_rate"]:.3f}. Cross-section: {definition}.</p>
<table><tr><th>figure</th>{head}</tr>{body}</table>
<h2>State ROC</h2><img src="roc.png" alt="ROC curves" width="700">
<h2>Per episode</h2><img src="episodes.png" alt="per-episode AUC" width="900">
{'<h2>Who gets hurt</h2><img src="ic.png" alt="rank IC by date" width="1000">' if who else ""}
{_moves(result.get("profile_branch"))}
</body></html>
"""


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
