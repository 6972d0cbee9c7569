"""Keep benchmarks/RESULTS.md as one file with a section per benchmark, each rewritten by its script."""

from __future__ import annotations

from pathlib import Path

from medlearn.utils.atomic import write_text_atomic


def replace_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (append if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + f"\n\n## {name}\n\n{block}\n"
    write_text_atomic(path, text)
