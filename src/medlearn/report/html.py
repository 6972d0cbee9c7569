"""A small builder for one self-contained HTML report page, shared by every task's report.

The page is a single file: CSS inline, images embedded as base64 PNG, no JavaScript and no
external URL, so it can be e-mailed, archived next to a model, or opened offline in any browser.
All text passed to the builder is HTML-escaped; only arguments documented as *markup* (``html``
parameters and :class:`Markup` values) are inserted verbatim, and those must come from code, not
from data (file names and class names are data).
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn import __version__
from medlearn.utils.atomic import write_text_atomic


class Markup(str):
    """A string of trusted HTML that :func:`escape` leaves alone (e.g. a table cell with markup)."""


def escape(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes included); :class:`Markup` passes through unchanged."""
    if isinstance(value, Markup):
        return str(value)
    return _html.escape(format_value(value), quote=True)


def format_value(value: Any) -> str:
    """Readable text for a table cell: floats with 4 significant digits, ``None`` as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def fixed(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals for summary text and cards; ``None``/NaN/inf as "n/a"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def paragraphs(text: str) -> Markup:
    """Escaped ``<p>`` blocks; blank lines in ``text`` separate paragraphs."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return Markup("".join(f"<p>{escape(p)}</p>" for p in parts))


_NUMERIC = re.compile(r"^[-+−]?\d[\d.,]*\s*%?(\s*[–-]\s*[-+−]?\d[\d.,]*\s*%?)?$")


def table_html(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> Markup:
    """A ``<table>``: cells escaped (unless :class:`Markup`), numbers right-aligned; "none" if empty."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
                isinstance(value, str) and not isinstance(value, Markup) and bool(_NUMERIC.match(value))
            )
            cells.append(f'<td class="num">{escape(value)}</td>' if numeric else f"<td>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{max(len(headers), 1)}" class="empty">none</td></tr>')
    return Markup(
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _slug(title: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


@dataclass
class _Section:
    title: str
    anchor: str
    highlight: bool = False
    blocks: list[str] = field(default_factory=list)


class Report:
    """An HTML report built section by section, written as one self-contained file.

    ``add_section`` starts a numbered section (listed in the table of contents); ``add_text``,
    ``add_table``, ``add_image``, ``add_kv``, ``add_stats`` and ``add_html`` append titled blocks
    to the current section (starting one named after the block when there is none yet).
    """

    def __init__(self, title: str, subtitle: str = "", generated: _dt.datetime | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.generated = generated or _dt.datetime.now().astimezone()
        self._sections: list[_Section] = []
        self._anchors: set[str] = set()

    # -- structure -----------------------------------------------------------------------------
    def add_section(self, title: str, html: str = "", *, highlight: bool = False) -> Report:
        """Start a section; ``html`` is trusted markup placed at its top (may be empty)."""
        section = _Section(title=title, anchor=_slug(title, self._anchors), highlight=highlight)
        if html:
            section.blocks.append(str(html))
        self._sections.append(section)
        return self

    def add_summary(self, title: str, html: str = "") -> Report:
        """Start the highlighted summary box (meant as the first section, for non-specialists)."""
        return self.add_section(title, html, highlight=True)

    def _current(self, title: str | None) -> _Section:
        if not self._sections:
            self.add_section(title or "Results")
        return self._sections[-1]

    def _block(self, title: str | None, body: str, css: str = "block") -> Report:
        section = self._current(title)
        heading = f"<h3>{escape(title)}</h3>" if title and title != section.title else ""
        section.blocks.append(f'<div class="{css}">{heading}{body}</div>')
        return self

    # -- content -------------------------------------------------------------------------------
    def add_html(self, html: str, title: str | None = None) -> Report:
        """Append trusted markup (built by code, with data escaped) to the current section."""
        return self._block(title, str(html))

    def add_text(self, text: str, title: str | None = None, *, note: bool = False) -> Report:
        """Append plain text (escaped); blank lines separate paragraphs. ``note`` renders it muted."""
        return self._block(title, paragraphs(text), "block note" if note else "block")

    def add_table(
        self,
        title: str | None,
        rows: Iterable[Sequence[Any]],
        headers: Sequence[str],
        caption: str = "",
        collapsed: str = "",
    ) -> Report:
        """Append a table (see :func:`table_html`); ``collapsed`` hides it behind that summary line."""
        table = table_html(rows, headers)
        if collapsed:
            table = f"<details><summary>{escape(collapsed)}</summary>{table}</details>"
        cap = f'<p class="caption">{escape(caption)}</p>' if caption else ""
        return self._block(title, table + cap)

    def add_verdict(self, comparison: Mapping[str, Any] | None, title: str | None = None) -> Report:
        """The model-vs-classical-baseline sentence (``BaselineComparison.to_dict()``): a warning box when the model
        does not beat its baseline, a bold line when it does."""
        if not comparison:
            return self
        text = escape(comparison.get("text") or "")
        if comparison.get("beaten"):
            return self._block(title, f"<p><strong>{text}</strong></p>")
        return self._block(title, f'<div class="callout"><strong>Warning:</strong> {text}</div>')

    def add_kv(self, title: str | None, mapping: Mapping[str, Any]) -> Report:
        """Append a two-column key/value table."""
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in mapping.items())
        if not rows:
            rows = '<tr><td class="empty">none</td></tr>'
        return self._block(title, f'<div class="table-wrap"><table class="kv"><tbody>{rows}</tbody></table></div>')

    def add_image(self, title: str | None, png: bytes, caption: str = "", alt: str = "", width: str = "") -> Report:
        """Append a PNG (embedded as base64) with an optional caption; ``width`` is a CSS width."""
        from medlearn.report.plots import png_data_uri  # only pages with images need matplotlib

        style = f' style="max-width:{escape(width)}"' if width else ""
        img = f'<img src="{png_data_uri(png)}" alt="{escape(alt or title or caption or "figure")}"{style}>'
        cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        return self._block(title, f"<figure>{img}{cap}</figure>")

    def add_stats(self, title: str | None, stats: Sequence[tuple[str, str, str]]) -> Report:
        """Append headline figures as cards: ``(label, value, note)`` each, e.g. a CI under a value."""
        cards = "".join(
            f'<div class="stat"><div class="stat-label">{escape(label)}</div>'
            f'<div class="stat-value">{escape(value)}</div><div class="stat-note">{escape(note)}</div></div>'
            for label, value, note in stats
        )
        return self._block(title, f'<div class="stats">{cards}</div>')

    # -- output --------------------------------------------------------------------------------
    @property
    def section_titles(self) -> list[str]:
        return [s.title for s in self._sections]

    def render(self) -> str:
        """The whole page as one HTML string."""
        toc = "".join(
            f'<li><a href="#{s.anchor}">{i}. {escape(s.title)}</a></li>' for i, s in enumerate(self._sections, 1)
        )
        sections = "".join(
            f'<section id="{s.anchor}" class="{"highlight" if s.highlight else ""}">'
            f"<h2>{i}. {escape(s.title)}</h2>{''.join(s.blocks)}</section>"
            for i, s in enumerate(self._sections, 1)
        )

        stamp = self.generated.strftime("%Y-%m-%d %H:%M %Z").strip()
        subtitle = f'<p class="subtitle">{escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f'<header><h1>{escape(self.title)}</h1>{subtitle}<p class="meta">Generated {escape(stamp)} '
            f"by medlearn {escape(__version__)}</p></header>"
            f'<div class="layout"><nav aria-label="Contents"><h2>Contents</h2><ol>{toc}</ol></nav>'
            f"<main>{sections}</main></div>"
            f"<footer>medlearn {escape(__version__)} · research software, not a medical device</footer>"
            "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page atomically (a crash never leaves a half-written report)."""
        return write_text_atomic(path, self.render())


_CSS = """
:root { --ink:#1d2733; --muted:#5b6672; --line:#d9dee4; --accent:#0b5c99; --soft:#f3f6f9;
  --good:#1b7f4b; --warn:#9a5b00; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.55; font-size: 16px;
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
header { padding: 28px 40px 18px; border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0 0 4px; font-size: 1.75rem; line-height: 1.25; }
.subtitle { margin: 0; color: var(--ink); font-size: 1.05rem; }
.meta { margin: 6px 0 0; color: var(--muted); font-size: .85rem; }
.layout { display: grid; grid-template-columns: 230px minmax(0, 1fr); gap: 36px; max-width: 1260px;
  padding: 0 40px; }
nav { position: sticky; top: 0; align-self: start; padding: 24px 0; font-size: .9rem; }
nav h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 0 0 8px; }
nav ol { list-style: none; margin: 0; padding: 0; }
nav li { margin: 0 0 4px; }
nav a { color: var(--ink); text-decoration: none; display: block; padding: 3px 8px; border-radius: 4px; }
nav a:hover { background: var(--soft); color: var(--accent); }
main { min-width: 0; padding: 8px 0 40px; max-width: 980px; }
section { padding: 8px 0 20px; border-bottom: 1px solid var(--line); }
section:last-child { border-bottom: 0; }
section.highlight { background: #eef5fb; border: 1px solid #bcd6ea; border-left: 6px solid var(--accent);
  border-radius: 8px; padding: 6px 24px 18px; margin-top: 22px; }
h2 { font-size: 1.3rem; margin: 22px 0 10px; }
h3 { font-size: 1.02rem; margin: 18px 0 8px; color: var(--ink); }
p { margin: 0 0 10px; }
ul { margin: 0 0 10px; padding-left: 22px; }
li { margin-bottom: 4px; }
.block { margin: 0 0 12px; }
.note p, p.caption, figcaption { color: var(--muted); font-size: .88rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 4px 0 8px; font-size: .9rem; min-width: 40%; }
th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--soft); border-bottom: 2px solid var(--line); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.empty { color: var(--muted); font-style: italic; }
table.kv th { width: 34%; font-weight: 600; color: var(--muted); background: none; white-space: nowrap; }
table.kv td { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85rem;
  word-break: break-word; }
details { margin: 4px 0 8px; }
summary { cursor: pointer; color: var(--accent); font-size: .9rem; }
td.num.strong, td.strong { font-weight: 700; }
figure { margin: 8px 0 14px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { margin-top: 4px; }
.stats { display: flex; flex-wrap: wrap; gap: 12px; margin: 6px 0 14px; }
.stat { flex: 1 1 170px; background: #fff; border: 1px solid #cfe0ee; border-radius: 8px; padding: 10px 14px; }
.stat-label { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.stat-value { font-size: 1.7rem; font-weight: 700; color: var(--accent); line-height: 1.2; }
.stat-note { font-size: .8rem; color: var(--muted); }
.callout { background: #fff8ec; border: 1px solid #f0d9b0; border-radius: 6px; padding: 10px 14px; }
.callout strong { color: var(--warn); }
footer { border-top: 1px solid var(--line); color: var(--muted); font-size: .8rem; padding: 14px 40px 28px; }
@media (max-width: 900px) {
  .layout { grid-template-columns: 1fr; padding: 0 18px; }
  nav { position: static; padding-bottom: 0; }
  header, footer { padding-left: 18px; padding-right: 18px; }
}
@media print {
  nav { display: none; }
  .layout { display: block; padding: 0; }
  section { break-inside: avoid-page; }
  figure { break-inside: avoid; }
}
"""
