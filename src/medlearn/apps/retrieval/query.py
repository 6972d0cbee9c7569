"""``retrieve query``: the top-k neighbours of each query image, as a CSV and as an HTML page showing every query
beside its neighbours (thumbnail, similarity, label). Neighbours in the query's own near-duplicate group (the same
image, or a copy of it, already in the index) are flagged, or left out with ``exclude_duplicates``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.apps.retrieval.embedders import UNIT_128, embedder_from_description
from medlearn.apps.retrieval.evaluate import joint_groups
from medlearn.apps.retrieval.index import VectorIndex
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.report.html import Markup, Report, escape
from medlearn.utils.atomic import write_csv_atomic

COLUMNS = ("query", "rank", "path", "similarity", "label", "group", "same_group_as_query")


def query_index(
    folder: Path, images: Sequence[Path], out: Path, *, k: int = 10, exclude_duplicates: bool = False
) -> list[dict]:
    """Neighbours of every image (CSV ``neighbours.csv`` and ``neighbours.html`` in ``out``); returns the rows."""
    index = VectorIndex.load(folder)
    embedder = embedder_from_description(index.embedder)
    queries = [Sample(Path(image)) for image in images]
    for query in queries:
        if not query.path.is_file():
            raise MedlearnError("no such image", query.path)
    vectors = embedder.embed([q.path for q in queries])
    index_groups, query_groups = joint_groups(index, queries)
    same = [{i for i, key in enumerate(index_groups) if key == q} for q in query_groups]
    scores, positions = index.search(vectors, k, exclude=same if exclude_duplicates else None)
    rows = []
    for q, query in enumerate(queries):
        for rank, (score, position) in enumerate(zip(scores[q], positions[q], strict=True), start=1):
            entry = index.entries[int(position)]
            rows.append(
                {
                    "query": str(query.path),
                    "rank": rank,
                    "path": entry.path,
                    "similarity": round(float(score), 5),
                    "label": entry.label or "",
                    "group": entry.group or "",
                    "same_group_as_query": int(position) in same[q],
                }
            )
    out = Path(out)
    write_csv_atomic(out / "neighbours.csv", COLUMNS, rows)
    _page(rows, queries, k, index.embedder.get("name", "?")).write(out / "neighbours.html")
    return rows


def thumbnail_png(path: Path, size: int = 96) -> bytes:
    from PIL import Image

    array = UNIT_128(load(path))[0]
    image = Image.fromarray(np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)).resize((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_cell(path: Path, lines: Sequence[str], outline: str | None = None) -> str:
    """A table cell with the image's thumbnail and caption lines, outlined in colour ``outline`` if given."""
    from medlearn.report.plots import png_data_uri

    style = f' style="outline:3px solid {outline}"' if outline else ""
    text = "<br>".join(escape(line) for line in lines)
    return (
        f'<td{style}><img src="{png_data_uri(thumbnail_png(path))}" alt="{escape(path.name)}" width="96"><br>'
        f'<span class="caption">{text}</span></td>'
    )


def _page(rows: list[dict], queries: Sequence[Sample], k: int, embedder: str) -> Report:
    report = Report("Retrieval", f"{len(queries)} queries, top {k} by {embedder} embedding (cosine similarity)")
    report.add_summary("Queries and their neighbours")
    report.add_text(
        "Each row: the query, then its neighbours best first with similarity and label. An outlined neighbour is in "
        "the query's own near-duplicate group (the same image or a copy of it)."
    )
    for query in queries:
        mine = [row for row in rows if row["query"] == str(query.path)]
        cells = [thumbnail_cell(query.path, ["query", query.path.name])]
        cells += [
            thumbnail_cell(
                Path(r["path"]),
                [f"#{r['rank']} {r['similarity']:.3f}", r["label"] or "-"],
                "#9a5b00" if r["same_group_as_query"] else None,
            )
            for r in mine
        ]
        report.add_html(Markup(f'<div class="table-wrap"><table><tr>{"".join(cells)}</tr></table></div>'))
    return report
