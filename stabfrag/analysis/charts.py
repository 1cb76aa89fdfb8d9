"""The report's two charts, as inline SVG and (the map) as a PNG that reads on its own.

The map is a PCA of the joint vectors (entity states and scenarios) to two dimensions:
states are circles coloured by fragility (colour bar), scenarios black squares, the HIGH
ones named on the map. The history is an entity's fragility and nearest-scenario
similarity over time, with dated ticks and the as-of date marked.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

import numpy as np

from stabfrag.analysis import canvas as cv

WIDTH, HEIGHT = 1100, 640
X0, X1, Y0, Y1 = 80, 860, 60, 580  # the plot area of the map
BAR_X, BAR_Y0, BAR_Y1 = 900, 90, 330  # the colour bar
# A perceptual ramp from calm (blue) through yellow to fragile (red).
RAMP = np.array(
    [[49, 54, 149], [69, 117, 180], [171, 217, 233], [254, 224, 144], [244, 109, 67], [165, 0, 38]],
    dtype=np.float64,
)
SCENARIO_RGB = (40, 40, 40)
TICKS = 5
LABEL_GAP = 11  # pixels between the baselines of two names on the map


def colour(values: np.ndarray) -> np.ndarray:
    """RGB (n, 3) uint8 for values in [0, 1] along the ramp."""
    x = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(RAMP) - 2)
    frac = (x - lo)[:, None]
    return (RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac).round().astype(np.uint8)


def span(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values; (0, 1) when there are none (e.g. null fragility of a
    library without HIGH scenarios), so nothing warns or divides by nothing."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of the rows (a fixed sign for each axis) and the
    share of the variance each explains."""
    x = vectors.astype(np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2] * np.sign(vt[:2, [0]] + 1e-300)  # deterministic orientation
    share = (s**2 / max(float((s**2).sum()), 1e-300))[:2]
    return x @ axes.T, np.pad(share, (0, 2 - len(share)))


@dataclass(frozen=True)
class MapData:
    """Everything both renderings of the map draw."""

    as_of: dt.date
    raw: np.ndarray  # (n, 2) principal components
    share: np.ndarray  # variance share of PC1, PC2
    fragility: np.ndarray  # NaN for scenarios and unknown
    is_scenario: np.ndarray
    is_high: np.ndarray  # HIGH-severity scenarios: named on the map
    names: list[str]  # entity or scenario id

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        (x_lo, y_lo), (x_hi, y_hi) = self.raw.min(axis=0), self.raw.max(axis=0)
        return float(x_lo), float(x_hi), float(y_lo), float(y_hi)

    def to_canvas(self, raw: np.ndarray) -> np.ndarray:
        x_lo, x_hi, y_lo, y_hi = self.bounds
        ux = (raw[:, 0] - x_lo) / (x_hi - x_lo if x_hi > x_lo else 1.0)
        uy = (raw[:, 1] - y_lo) / (y_hi - y_lo if y_hi > y_lo else 1.0)
        m = 12  # keep markers inside the frame
        return np.column_stack([X0 + m + ux * (X1 - X0 - 2 * m), Y1 - m - uy * (Y1 - Y0 - 2 * m)])

    @property
    def points(self) -> np.ndarray:
        return self.to_canvas(self.raw)

    @property
    def frag_range(self) -> tuple[float, float]:
        return span(self.fragility[~self.is_scenario])

    @property
    def colours(self) -> np.ndarray:
        lo, hi = self.frag_range
        out = colour((self.fragility - lo) / max(hi - lo, 1e-9))
        out[self.is_scenario] = SCENARIO_RGB
        return out

    def ticks(self) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
        """(canvas x, label) of the PC1 ticks and (canvas y, label) of the PC2 ticks."""
        x_lo, x_hi, y_lo, y_hi = self.bounds
        xs, ys = np.linspace(x_lo, x_hi, TICKS), np.linspace(y_lo, y_hi, TICKS)
        at = self.to_canvas(np.column_stack([xs, ys]))
        return (
            [(float(p), f"{v:.2f}") for p, v in zip(at[:, 0], xs, strict=True)],
            [(float(p), f"{v:.2f}") for p, v in zip(at[:, 1], ys, strict=True)],
        )

    def axis_titles(self) -> tuple[str, str]:
        return (
            f"PC1 ({self.share[0]:.0%} of variance)",
            f"PC2 ({self.share[1]:.0%} of variance)",
        )

    def labels(self) -> list[tuple[int, tuple[float, float]]]:
        """(row, baseline position) of each HIGH scenario's name: right of its marker, moved
        down until it overlaps no name placed before it (a few labels, placed greedily)."""
        pts = self.points
        placed: list[tuple[float, float, float]] = []  # x0, x1, baseline
        out = []
        for i in sorted(np.flatnonzero(self.is_high), key=lambda k: pts[k, 1]):
            x, y = pts[i, 0] + 8, pts[i, 1] - 6
            width = cv.text_width(self.names[i])
            while any(a < x + width and x < b and abs(y - c) < LABEL_GAP for a, b, c in placed):
                y += LABEL_GAP
            placed.append((x, x + width, y))
            out.append((int(i), (float(x), float(y))))
        return out

    def title(self) -> str:
        n_scen = int(self.is_scenario.sum())
        return (
            f"Joint space {self.as_of}: {len(self.names) - n_scen} entity states, "
            f"{n_scen} scenarios"
        )


def _bar_colours(rows: int) -> np.ndarray:
    return colour(np.linspace(1, 0, rows))  # top is fragile


def _map_frame(data: MapData) -> list[str]:
    """The map's SVG opening, title, frame, ticks and axis titles."""
    (xt, yt), (tx, ty) = data.ticks(), data.axis_titles()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="12">',
        f'<text x="{X0}" y="30" font-size="16">{html.escape(data.title())}</text>',
        f'<rect x="{X0}" y="{Y0}" width="{X1 - X0}" height="{Y1 - Y0}" fill="none" stroke="#999"/>',
    ]
    parts += [
        f'<line x1="{x:.1f}" y1="{Y1}" x2="{x:.1f}" y2="{Y1 + 5}" stroke="#999"/>'
        f'<text x="{x:.1f}" y="{Y1 + 18}" text-anchor="middle">{label}</text>'
        for x, label in xt
    ]
    parts += [
        f'<line x1="{X0 - 5}" y1="{y:.1f}" x2="{X0}" y2="{y:.1f}" stroke="#999"/>'
        f'<text x="{X0 - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        for y, label in yt
    ]
    parts.append(
        f'<text x="{(X0 + X1) / 2}" y="{Y1 + 40}" text-anchor="middle">{tx}</text>'
        f'<text transform="translate(18 {(Y0 + Y1) / 2}) rotate(-90)" '
        f'text-anchor="middle">{ty}</text>'
    )
    return parts


def _map_points(data: MapData) -> list[str]:
    """Each point's markup (hover for its name), scenarios drawn last, on top."""
    parts = []
    for i in np.argsort(data.is_scenario, kind="stable"):
        (x, y), (r, g, b) = data.points[i], data.colours[i]
        f = data.fragility[i]
        what = (
            "scenario"
            if data.is_scenario[i]
            else (f"fragility {f:.3f}" if np.isfinite(f) else "fragility n/a")
        )
        title = f"<title>{html.escape(data.names[i])}: {what}</title>"
        if data.is_scenario[i]:
            parts.append(
                f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" '
                f'fill="rgb({r},{g},{b})" stroke="#000">{title}</rect>'
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="rgb({r},{g},{b})" '
                f'fill-opacity="0.85">{title}</circle>'
            )
    return parts


def map_svg(data: MapData) -> str:
    """The map as inline SVG: frame, ticks, axis titles, points (hover for names), HIGH
    scenarios named, colour bar and legend."""
    lo, hi = data.frag_range
    parts = _map_frame(data) + _map_points(data)
    parts += [
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" stroke="white" stroke-width="3" '
        f'paint-order="stroke">{html.escape(data.names[i])}</text>'
        for i, (x, y) in data.labels()
    ]
    stops = "".join(
        f'<stop offset="{k / (len(RAMP) - 1):.2f}" stop-color="rgb({r:.0f},{g:.0f},{b:.0f})"/>'
        for k, (r, g, b) in enumerate(RAMP[::-1])
    )
    parts.append(
        f'<defs><linearGradient id="ramp" x1="0" y1="0" x2="0" y2="1">{stops}'
        "</linearGradient></defs>"
        f'<text x="{BAR_X}" y="{BAR_Y0 - 14}">fragility</text>'
        f'<rect x="{BAR_X}" y="{BAR_Y0}" width="18" height="{BAR_Y1 - BAR_Y0}" '
        'fill="url(#ramp)" stroke="#999"/>'
        f'<text x="{BAR_X + 24}" y="{BAR_Y0 + 10}">{hi:.3f} (most fragile)</text>'
        f'<text x="{BAR_X + 24}" y="{BAR_Y1}">{lo:.3f}</text>'
    )
    ly = BAR_Y1 + 50
    parts.append(
        f'<circle cx="{BAR_X + 9}" cy="{ly}" r="4" fill="rgb(244,109,67)"/>'
        f'<text x="{BAR_X + 24}" y="{ly + 4}">entity state</text>'
        f'<rect x="{BAR_X + 4}" y="{ly + 20}" width="10" height="10" fill="rgb(40,40,40)" '
        f'stroke="#000"/><text x="{BAR_X + 24}" y="{ly + 29}">scenario</text>'
        f'<text x="{BAR_X}" y="{ly + 56}">HIGH-severity</text>'
        f'<text x="{BAR_X}" y="{ly + 72}">scenarios named</text>'
        "</svg>"
    )
    return "".join(parts)


def map_png(data: MapData) -> np.ndarray:
    """The map as an (h, w, 3) image with its title, ticks, axis titles, colour bar, legend
    and the HIGH scenarios named: it reads on its own."""
    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    grey = (150, 150, 150)
    for x0, y0, x1, y1 in ((X0, Y0, X1, Y0 + 1), (X0, Y1, X1, Y1 + 1)):
        cv.fill_rect(img, x0, y0, x1, y1, grey)
    for x0, y0, x1, y1 in ((X0, Y0, X0 + 1, Y1), (X1, Y0, X1 + 1, Y1 + 1)):
        cv.fill_rect(img, x0, y0, x1, y1, grey)
    cv.draw_text(img, X0, 18, data.title(), scale=2)
    (xt, yt), (tx, ty) = data.ticks(), data.axis_titles()
    for x, label in xt:
        cv.fill_rect(img, round(x), Y1, round(x) + 1, Y1 + 5, grey)
        cv.draw_text(img, round(x) - cv.text_width(label) // 2, Y1 + 9, label)
    for y, label in yt:
        cv.fill_rect(img, X0 - 5, round(y), X0, round(y) + 1, grey)
        cv.draw_text(img, X0 - 8 - cv.text_width(label), round(y) - 3, label)
    cv.draw_text(img, (X0 + X1 - cv.text_width(tx, 2)) // 2, Y1 + 28, tx, scale=2)
    cv.draw_text(img, 8, (Y0 + Y1 - cv.text_width(ty, 2)) // 2, ty, scale=2, vertical=True)
    pts = data.points
    cv.markers(img, pts, data.colours, np.where(data.is_scenario, 5, 2))
    for i, (x, y) in data.labels():  # on a white box, over the markers
        name = data.names[i]
        cv.fill_rect(
            img,
            round(x) - 1,
            round(y) - 8,
            round(x) + cv.text_width(name),
            round(y) + 1,
            (255, 255, 255),
        )
        cv.draw_text(img, round(x), round(y) - 7, name)
    lo, hi = data.frag_range
    cv.draw_text(img, BAR_X, BAR_Y0 - 20, "FRAGILITY", scale=2)
    cv.fill_rect(img, BAR_X, BAR_Y0, BAR_X + 18, BAR_Y1, _bar_colours(BAR_Y1 - BAR_Y0))
    cv.draw_text(img, BAR_X + 24, BAR_Y0, f"{hi:.3f} MOST FRAGILE")
    cv.draw_text(img, BAR_X + 24, BAR_Y1 - 7, f"{lo:.3f}")
    ly = BAR_Y1 + 40
    cv.markers(
        img, np.array([[BAR_X + 9, ly]]), np.array([[244, 109, 67]], np.uint8), np.array([2])
    )
    cv.draw_text(img, BAR_X + 24, ly - 3, "ENTITY STATE")
    cv.markers(
        img, np.array([[BAR_X + 9, ly + 24]]), np.array([SCENARIO_RGB], np.uint8), np.array([5])
    )
    cv.draw_text(img, BAR_X + 24, ly + 21, "SCENARIO")
    cv.draw_text(img, BAR_X, ly + 48, "HIGH-SEVERITY")
    cv.draw_text(img, BAR_X, ly + 60, "SCENARIOS NAMED")
    return img


def _date_ticks(first: dt.date, last: dt.date) -> list[dt.date]:
    """Year starts within [first, last]; month starts (at most about 8) for a shorter span."""
    years = [dt.date(y, 1, 1) for y in range(first.year, last.year + 1)]
    years = [d for d in years if first <= d <= last]
    if len(years) >= 3:
        step = max(1, len(years) // 8)
        return years[::step]
    months = []
    y, m = first.year, first.month
    while dt.date(y, m, 1) <= last:
        if dt.date(y, m, 1) >= first:
            months.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    step = max(1, len(months) // 8)
    return months[::step] or [first]


def _history_marks(xa: float, as_of: dt.date, top: int, bottom_y: int, lx: int) -> str:
    """The history's as-of marker at `xa`, its legend at `lx`, and the SVG's end."""
    return (
        f'<line x1="{xa:.1f}" y1="{top}" x2="{xa:.1f}" y2="{bottom_y}" stroke="#225" '
        f'stroke-dasharray="2 2"/><text x="{xa - 4:.1f}" y="{top + 12}" '
        f'text-anchor="end">as of {as_of}</text>'
        f'<line x1="{lx}" y1="{top + 20}" x2="{lx + 24}" y2="{top + 20}" stroke="#a50026" '
        f'stroke-width="2"/><text x="{lx + 30}" y="{top + 24}">fragility (nearest</text>'
        f'<text x="{lx + 30}" y="{top + 38}">HIGH scenario)</text>'
        f'<line x1="{lx}" y1="{top + 60}" x2="{lx + 24}" y2="{top + 60}" stroke="#888" '
        f'stroke-dasharray="4 3"/><text x="{lx + 30}" y="{top + 64}">nearest scenario</text>'
        f'<text x="{lx + 30}" y="{top + 78}">(any severity)</text></svg>'
    )


def history_svg(
    dates: list[dt.date], fragility: list[float], similarity: list[float], as_of: dt.date
) -> str:
    """Fragility (similarity to the nearest HIGH scenario) and similarity to the nearest
    scenario of any severity over time, dated ticks, the as-of date marked."""
    w, h, left, right, top, bottom = 1000, 280, 60, 190, 20, 40
    if not dates:
        return "<p>No history for this entity.</p>"
    first, last = min(dates[0], as_of), max(dates[-1], as_of)
    days = max((last - first).days, 1)

    def x_of(d: dt.date) -> float:
        return left + (d - first).days / days * (w - left - right)

    frag, sim = np.array(fragility, dtype=float), np.array(similarity, dtype=float)
    lo, hi = span(np.concatenate([frag, sim]))
    lo, hi = (lo, hi) if hi > lo else (lo - 0.05, hi + 0.05)

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    def line(values: np.ndarray, style: str) -> str:
        # A gap where a value is missing: one polyline per run of known values.
        runs, run = [], []
        for d, v in zip(dates, values, strict=True):  # markup for each point
            if np.isfinite(v):
                run.append(f"{x_of(d):.1f},{y_of(float(v)):.1f}")
            elif run:
                runs.append(run)
                run = []
        runs.append(run)
        return "".join(f'<polyline fill="none" {style} points="{" ".join(r)}"/>' for r in runs if r)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]
    for d in _date_ticks(first, last):
        parts.append(
            f'<line x1="{x_of(d):.1f}" y1="{h - bottom}" x2="{x_of(d):.1f}" '
            f'y2="{h - bottom + 5}" stroke="#999"/><text x="{x_of(d):.1f}" '
            f'y="{h - bottom + 18}" text-anchor="middle">{d.isoformat()[:7]}</text>'
        )
    for v in np.linspace(lo, hi, TICKS):
        parts.append(
            f'<line x1="{left - 5}" y1="{y_of(v):.1f}" x2="{left}" y2="{y_of(v):.1f}" '
            f'stroke="#999"/><text x="{left - 8}" y="{y_of(v) + 4:.1f}" '
            f'text-anchor="end">{v:.2f}</text>'
        )
    parts.append(line(sim, 'stroke="#888" stroke-width="1.5" stroke-dasharray="4 3"'))
    parts.append(line(frag, 'stroke="#a50026" stroke-width="2"'))
    parts.append(_history_marks(x_of(as_of), as_of, top, h - bottom, w - right + 15))
    return "".join(parts)
