"""Page assembly: a single self-contained HTML file (inline CSS, images as data URIs, no scripts).

Every piece of text that reaches the page goes through :func:`esc`; markup built here is
wrapped in :class:`Html` so that it is not escaped twice.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .plots import data_uri


class Html(str):
    """Markup that is already safe to insert."""


def esc(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attrs: Any) -> Html:
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{html.escape(str(v), quote=True)}"'
                   for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{attr}>{esc(content)}</{name}>")


def fmt_number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def mean_std(cell: dict[str, float] | None) -> Html:
    if not cell:
        return Html("–")
    m, s = cell.get("mean", float("nan")), cell.get("std", float("nan"))
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return Html("–")
    return Html(f'{fmt_number(m)}<span class="sd"> ± {fmt_number(s)}</span>')


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *, numeric: Sequence[int] = (),
          caption: Any = None, cls: str = "data") -> Html:
    """A table; columns in ``numeric`` are right-aligned in tabular figures."""
    head = join(tag("th", h, class_="num" if i in numeric else None) for i, h in enumerate(header))
    body = join(tag("tr", join(tag("td", c, class_="num" if i in numeric else None) for i, c in enumerate(row)))
                for row in rows)
    cap = tag("caption", caption) if caption is not None else ""
    return tag("table", join([cap, tag("thead", tag("tr", head)), tag("tbody", body)]), class_=cls)


def figure(png: bytes, caption: Any, alt: str, wide: bool = False) -> Html:
    img = Html(f'<img src="{data_uri(png)}" alt="{html.escape(alt, quote=True)}">')
    return tag("figure", join([img, tag("figcaption", caption)]), class_="wide" if wide else None)


def grid(items: Sequence[Html]) -> Html:
    return tag("div", join(items), class_="grid")


def note(text: Any, cls: str = "note") -> Html:
    return tag("p", text, class_=cls)


def unavailable(reason: Any) -> Html:
    return tag("p", join(["section unavailable: ", reason]), class_="unavailable")


def section(sid: str, title: str, body: Any, lead: Any = None) -> Html:
    parts = [tag("h2", title)]
    if lead:
        parts.append(tag("p", lead, class_="lead"))
    parts.append(body)
    return tag("section", join(parts), id=sid)


def cards(items: Sequence[tuple[Any, Any]]) -> Html:
    """Big-number tiles: (value, label)."""
    return tag("div", join(tag("div", join([tag("div", v, class_="value"), tag("div", k, class_="label")]),
                                class_="card") for v, k in items), class_="cards")


def details(summary: Any, body: Any) -> Html:
    return tag("details", join([tag("summary", summary), body]))


CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#2f5d8a; --warn:#b44d12; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:linear-gradient(120deg,#1f3b57,#2f5d8a); color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 6px; font-size:22px; font-weight:600; letter-spacing:.2px; }
header .meta { display:flex; flex-wrap:wrap; gap:8px; }
header .chip { background:rgba(255,255,255,.14); border-radius:12px; padding:2px 10px; font-size:12.5px; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
      padding:6px 32px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; }
nav a:hover { text-decoration:underline; }
main { max-width:1280px; margin:0 auto; padding:18px 32px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 22px 18px;
          margin:0 0 18px; }
h2 { font-size:17px; margin:2px 0 8px; color:#1f3b57; }
h3 { font-size:14px; margin:14px 0 6px; color:#323f4b; }
p.lead { color:var(--muted); margin:0 0 12px; }
p.note { color:var(--muted); font-style:italic; }
p.unavailable { color:var(--warn); background:#fff4ec; border-left:3px solid var(--warn); padding:6px 10px; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:4px 0 12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:110px; background:#fafbfc; }
.card .value { font-size:19px; font-weight:600; }
.card .label { font-size:12px; color:var(--muted); }
table.data { border-collapse:collapse; margin:6px 0 10px; font-size:13px; }
table.data caption { text-align:left; color:var(--muted); font-size:12.5px; padding-bottom:4px; }
table.data th, table.data td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:left; }
table.data th { background:#f0f3f7; font-weight:600; }
table.data tbody tr:nth-child(even) { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td .sd { color:var(--muted); font-size:12px; }
td.best { font-weight:700; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:16px; align-items:start; }
figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:8px; background:#fff; }
figure.wide { grid-column:1 / -1; }
figure img { max-width:100%; height:auto; display:block; margin:0 auto; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:6px; }
details { margin:8px 0; }
details summary { cursor:pointer; color:var(--accent); }
pre { background:#f5f7fa; padding:8px; border-radius:4px; overflow:auto; font-size:12px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 24px; }
.cols { display:flex; flex-wrap:wrap; gap:28px; }
"""


def page(title: str, chips: Sequence[Any], nav: Sequence[tuple[str, str]], sections: Sequence[Html],
         footer: Any) -> str:
    links = join(tag("a", label, href=f"#{sid}") for sid, label in nav)
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>")
    header = tag("header", join([tag("h1", title),
                                 tag("div", join(tag("span", c, class_="chip") for c in chips), class_="meta")]))
    body = join([header, tag("nav", links), tag("main", join(sections)), tag("footer", footer)])
    return head + body + "</body></html>\n"
