"""Charts rendered offline: an HTML page with Vega's JavaScript inlined, SVG, and PNG with
real fonts, through vl-convert (the optional extra `stabfrag[plot]`).

Without the extra a page still renders: its tables and a one-line note where each chart
would be.
"""

from __future__ import annotations

import html
import json
from typing import Any

from stabfrag.analysis.charts import Spec
from stabfrag.errors import ConfigError

EXTRA = "pip install 'stabfrag[plot]'"


def _vlc() -> Any:
    """vl-convert, or None without the extra."""
    try:
        import vl_convert
    except ImportError:
        return None
    return vl_convert


def available() -> bool:
    return _vlc() is not None


def png(spec: Spec, *, scale: float = 2.0) -> bytes:
    """The chart as PNG (real fonts, no browser)."""
    vlc = _vlc()
    if vlc is None:
        raise ConfigError(f"charts need vl-convert: {EXTRA}")
    return bytes(vlc.vegalite_to_png(spec, scale=scale))


def svg(spec: Spec) -> str:
    vlc = _vlc()
    if vlc is None:
        raise ConfigError(f"charts need vl-convert: {EXTRA}")
    return str(vlc.vegalite_to_svg(spec))


def page(title: str, sections: list[tuple[str, str | Spec]], *, css: str = "") -> str:
    """A self-contained HTML page: each section an HTML fragment or a chart spec. The
    charts are drawn by Vega's JavaScript, inlined once, so the page works offline; without
    the extra each chart is a one-line note."""
    vlc = _vlc()
    body, embeds = [], []
    for i, (heading, content) in enumerate(sections):
        if heading:
            body.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, str):
            body.append(content)
        elif vlc is None:
            body.append(f'<p class="note">(Chart not drawn: {html.escape(EXTRA)}.)</p>')
        else:
            body.append(f'<div id="chart{i}"></div>')
            # </script> inside the JSON would end the script element early.
            data = json.dumps(content).replace("</", "<\\/")
            embeds.append(f'vegaEmbed("#chart{i}", {data}, {{"actions": false}});')
    script = ""
    if embeds:
        script = f"<script>{vlc.javascript_bundle()}</script>\n<script>{''.join(embeds)}</script>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }}
th {{ cursor: pointer; }}
.note {{ color: #666; font-size: 13px; max-width: 1000px; }}
{css}
</style></head><body>
<h1>{html.escape(title)}</h1>
{"".join(body)}
{script}
<script>{SORTABLE}</script>
</body></html>
"""


# A click on a table's header sorts its rows by that column (numbers as numbers).
SORTABLE = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  Array.from(table.tHead.rows[0].cells).forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.from(body.rows);
      var up = th.dataset.up !== "1";
      th.dataset.up = up ? "1" : "0";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
