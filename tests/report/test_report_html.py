"""The generic page builder: one self-contained, escaped HTML file with a table of contents."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from medlearn.report.html import Markup, Report, escape, format_value

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
EVIL = '<script>alert("x")</script>'


def _page() -> Report:
    report = Report(f"Title {EVIL}", subtitle="sub & title")
    report.add_summary("Summary", "<p>trusted <b>markup</b></p>")
    report.add_stats(None, [("Accuracy", "97%", f"note {EVIL}")])
    report.add_section("Data")
    report.add_table("Counts", [["train", 10, 0.5], [EVIL, 3, None]], ["split", "n", EVIL])
    report.add_kv("Settings", {EVIL: EVIL, "lr": 0.0003, "flag": True})
    report.add_image("Figure", PNG_1x1, caption=EVIL)
    report.add_text(f"first paragraph {EVIL}\n\nsecond paragraph", "Notes")
    report.add_section("Data")  # duplicate titles get distinct anchors
    report.add_table("Empty", [], ["a", "b"])
    return report


def test_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    out = _page().write(tmp_path / "sub" / "page.html")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;") >= 7  # title (twice), stat note, table cell, header, kv, caption, text
    assert html.count("data:image/png;base64,") == 1
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html
    assert "<p>trusted <b>markup</b></p>" in html
    assert "sub &amp; title" in html
    assert "<p>second paragraph</p>" in html
    assert 'class="empty">none<' in html
    assert list(out.parent.iterdir()) == [out]


def test_table_of_contents_links_every_section() -> None:
    html = _page().render()
    anchors = re.findall(r'<li><a href="#([^"]+)">(\d+)\. ([^<]+)</a></li>', html)
    assert [(n, t) for _, n, t in anchors] == [("1", "Summary"), ("2", "Data"), ("3", "Data")]
    for anchor, _, _ in anchors:
        assert f'<section id="{anchor}"' in html
    assert len({a for a, _, _ in anchors}) == 3
    assert '<section id="summary" class="highlight">' in html


def test_blocks_without_a_section_start_one() -> None:
    report = Report("t")
    report.add_kv("Only block", {"a": 1})
    assert report.section_titles == ["Only block"]


def test_value_formatting_and_markup_passthrough() -> None:
    assert format_value(0.123456) == "0.1235"
    assert format_value(float("nan")) == "n/a"
    assert format_value(None) == "–"
    assert format_value([1, 2]) == "1, 2"
    assert escape(Markup("<b>x</b>")) == "<b>x</b>"
    assert escape("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    html = Report("t").add_table("T", [["96.0%", "94.1–97.7%", "text"]], ["a", "b", "c"]).render()
    assert html.count('<td class="num">') == 2  # numbers, percentages and ranges are right-aligned
