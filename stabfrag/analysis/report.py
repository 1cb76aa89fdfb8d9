"""A self-contained HTML report of one as-of date, and a PNG of its map.

The map is a PCA of the joint vectors (entity states and scenarios) to two dimensions,
states coloured by fragility. Everything is drawn here: inline SVG in the page, a small
numpy rasteriser for the PNG; no plotting library, no network.
"""

from __future__ import annotations

import datetime as dt
import html
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from stabfrag.analysis.query import check_date, check_entity, run_sql
from stabfrag.atomic import write_atomic
from stabfrag.sinks.dataset import read_table

WIDTH, HEIGHT, PAD = 900, 600, 40
# A perceptual ramp from calm (blue) through yellow to fragile (red).
RAMP = np.array(
    [[49, 54, 149], [69, 117, 180], [171, 217, 233], [254, 224, 144], [244, 109, 67], [165, 0, 38]],
    dtype=np.float64,
)


def colour(values: np.ndarray) -> np.ndarray:
    """RGB (n, 3) uint8 for values in [0, 1] along the ramp."""
    x = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(RAMP) - 2)
    frac = (x - lo)[:, None]
    return (RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac).round().astype(np.uint8)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows, with a fixed sign for each axis."""
    x = vectors.astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2] * np.sign(vt[:2, [0]] + 1e-300)  # deterministic orientation
    return x @ axes.T


def _to_canvas(xy: np.ndarray) -> np.ndarray:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    unit = (xy - lo) / span
    return np.column_stack(
        [PAD + unit[:, 0] * (WIDTH - 2 * PAD), HEIGHT - PAD - unit[:, 1] * (HEIGHT - 2 * PAD)]
    )


def png_bytes(canvas: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG."""
    h, w, _ = canvas.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), canvas.reshape(h, w * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data))
            + kind
            + data
            + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def raster(points: np.ndarray, colours: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Draw square markers (all at once, by broadcasting) on a white canvas."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    canvas[PAD - 1, PAD : WIDTH - PAD] = canvas[HEIGHT - PAD, PAD : WIDTH - PAD] = 200
    canvas[PAD : HEIGHT - PAD, PAD - 1] = canvas[PAD : HEIGHT - PAD, WIDTH - PAD] = 200
    order = np.argsort(sizes, kind="stable")  # large markers (scenarios) drawn last, on top
    for size in np.unique(sizes):
        sel = order[sizes[order] == size]
        off = np.arange(-size, size + 1)
        ys = points[sel, 1].round().astype(int)[:, None, None] + off[None, :, None]
        xs = points[sel, 0].round().astype(int)[:, None, None] + off[None, None, :]
        ys, xs = np.broadcast_arrays(ys, xs)
        cols = np.broadcast_to(colours[sel][:, None, None, :], (*ys.shape, 3))
        ok = (ys >= 0) & (ys < HEIGHT) & (xs >= 0) & (xs < WIDTH)
        canvas[ys[ok], xs[ok]] = cols[ok]
    return canvas


def _svg_map(
    points: np.ndarray, colours: np.ndarray, labels: list[str], scenario: np.ndarray
) -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        'fill="none" stroke="#ccc"/>',
    ]
    for (x, y), (r, g, b), label, is_scen in zip(
        points, colours, labels, scenario, strict=True
    ):  # markup for each point
        fill = f"rgb({r},{g},{b})"
        title = f"<title>{html.escape(label)}</title>"
        if is_scen:
            parts.append(
                f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" '
                f'fill="{fill}" stroke="#000">{title}</rect>'
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" '
                f'fill-opacity="0.8">{title}</circle>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _span(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values; (0, 1) when there are none (e.g. null fragility of a
    library without HIGH scenarios), so nothing warns or divides by nothing."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)


def _svg_line(dates: list[dt.date], values: list[float]) -> str:
    w, h, pad = 900, 220, 35
    if not dates:
        return "<p>No history for this entity.</p>"
    t = np.array([(d - dates[0]).days for d in dates], dtype=float)
    v = np.array(values, dtype=float)
    tx = pad + (t / max(t.max(), 1)) * (w - 2 * pad)
    lo, hi = _span(v)
    vy = h - pad - (v - lo) / max(hi - lo, 1e-9) * (h - 2 * pad)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(tx, vy, strict=True))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
        f'<polyline fill="none" stroke="#a50026" stroke-width="2" points="{path}"/>'
        f'<text x="{pad}" y="{h - 8}" font-size="12">{dates[0]}</text>'
        f'<text x="{w - pad - 70}" y="{h - 8}" font-size="12">{dates[-1]}</text>'
        f'<text x="4" y="{pad}" font-size="12">{hi:.2f}</text>'
        f'<text x="4" y="{h - pad}" font-size="12">{lo:.2f}</text></svg>'
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


def build_report(out: Path, as_of: dt.date, target: Path, entity: str | None = None) -> Path:
    """Write the HTML page to `target` and its map to target with suffix .png."""
    check_date(out, as_of)
    if entity:
        check_entity(out, entity)
    joint = read_table(out, "joint_embeddings", as_of)
    xy = _to_canvas(pca_2d(joint["vector"].to_numpy()))
    is_scen = (joint["kind"] == "scenario").to_numpy()
    frag = joint["fragility"].fill_null(np.nan).to_numpy()
    lo, hi = _span(frag[~is_scen])
    colours = colour((frag - lo) / max(hi - lo, 1e-9))
    colours[is_scen] = np.array([40, 40, 40], np.uint8)
    labels = [
        (f"{e} fragility {f:.3f}" if np.isfinite(f) else f"{e} fragility n/a")
        if k == "entity"
        else f"scenario {s}"
        for k, e, s, f in joint.select(
            "kind", "entity_id", "scenario_id", pl.col("fragility").fill_null(np.nan)
        ).iter_rows()
    ]
    png = raster(xy, colours, np.where(is_scen, 5, 2))
    png_path = target.with_suffix(".png")
    write_atomic(png_path, lambda p: p.write_bytes(png_bytes(png)))
    top = run_sql(out, "fragile", {"as_of": as_of, "top_n": 20})
    history = ""
    if entity:
        hist = run_sql(out, "entity_history", {"entity_id": entity})
        history = f"<h2>{html.escape(entity)}: fragility over time</h2>" + _svg_line(
            hist["as_of_date"].to_list(), hist["fragility"].fill_null(np.nan).to_list()
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>stabfrag report {as_of}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }}
.note {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>Stability/fragility joint space, {as_of}</h1>
<p class="note">{int((~is_scen).sum())} entity states (circles, blue calm to red fragile)
and {int(is_scen.sum())} scenarios (black squares); the first two principal components of
the joint vectors. Hover a point for its name.</p>
{_svg_map(xy, colours, labels, is_scen)}
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
{history}
</body></html>
"""
    write_atomic(target, lambda p: p.write_text(page))
    return target
