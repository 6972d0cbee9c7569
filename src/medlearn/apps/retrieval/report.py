"""The ``retrieve evaluate`` report: one page a reader can judge a retrieval embedding by.

Headline figures with 95% intervals, the plain sentence on the classical baseline, the embedder beside the
classical ones (table and precision@r curves), the definitions the figures use (relevance, what is left out, mAP@10),
and the queries the embedder answers worst and best, each beside its top neighbours (hits outlined green, misses
red), so a reader sees what "similar" means to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.apps.retrieval.evaluate import Evaluation
from medlearn.apps.retrieval.query import thumbnail_cell
from medlearn.evaluation.retrieval import average_precision_at_k
from medlearn.report.html import Markup, Report
from medlearn.report.plots import precision_at_rank_plot

METRICS = (
    ("precision_at_1", "P@1"),
    ("precision_at_5", "P@5"),
    ("precision_at_10", "P@10"),
    ("map_at_10", "mAP@10"),
    ("recall_at_10", "R@10"),
)
#: Queries shown worst first, then best, each with this many neighbours.
WORST, BEST, NEIGHBOURS = 4, 2, 6


def _interval(values) -> str:
    return "" if not values or values[0] is None else f" ({values[0]:.3f}-{values[1]:.3f})"


def _value(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_evaluation_report(evaluation: Evaluation, path: Path, data: str) -> Path:
    summary = evaluation.summary
    report = Report(
        f"Retrieval: {summary['embedder']}",
        f"{summary['queries']} queries from {data} against {summary['index_size']} indexed images; "
        f"relevant = {summary['relevance']}",
    )
    stats = [
        (label, _value(summary[key]), "95% CI" + _interval(summary.get(f"{key}_ci")))
        for key, label in METRICS
        if key != "precision_at_5"
    ]
    stats.append(
        ("ms per query", f"{summary['query_ms']:.2f}", f"index search; embedding {summary['embed_ms_per_image']} ms")
    )
    report.add_summary("Summary").add_stats(None, stats)
    report.add_verdict(summary.get("baseline_comparison"))
    rows = [[summary["embedder"], *(_value(summary[k]) + _interval(summary.get(f"{k}_ci")) for k, _ in METRICS),
             f"{summary['query_ms']:.2f}"]]  # fmt: skip
    for name, scores in summary["baseline"].items():
        rows.append([name, *(_value(scores.get(k)) for k, _ in METRICS), f"{scores['query_ms']:.2f}"])
    section = report.add_section("Embedder beside the classical baselines")
    section.add_table(
        None, rows, ["embedder", *(label for _, label in METRICS), "ms/query"],
        caption="Means over queries (95% bootstrap intervals for the embedder); baselines: intensity/texture "
        "histogram features and the perceptual hash, indexed from the same images.",
    )  # fmt: skip
    section.add_image(None, precision_at_rank_plot(evaluation.curves), caption="Mean precision@r for r = 1..10.")
    report.add_section("Definitions").add_text(
        f"Relevant: {summary['relevance']}. Left out of each query's ranking and relevant count: "
        + (
            "every indexed image in the query's own group (given group or near-duplicate cluster), so a copy of the "
            "query never counts as a hit"
            if summary["relevance"] == "same label"
            else "the query's own file (same path or content), so the rest of its group is what must be found; "
            f"{summary['queries_without_relevant']} queries with no other group member in the index are not scored"
        )
        + f" ({summary['excluded_per_query']:.2f} images per query on average).\n\n{summary['map_definition']}."
    )
    _examples(report, evaluation)
    return report.write(path)


def _examples(report: Report, evaluation: Evaluation) -> None:
    ranking = evaluation.ranking
    scores = np.nan_to_num(
        average_precision_at_k(ranking.relevant, ranking.total_relevant, ranking.relevant.shape[1]), nan=2.0
    )
    order = np.argsort(scores, kind="stable")
    counted = [int(i) for i in order if scores[i] <= 1.0]
    chosen = counted[:WORST] + [i for i in counted[::-1][:BEST] if i not in counted[:WORST]]
    if not chosen:
        return
    report.add_section("Queries answered worst and best")
    report.add_text(
        f"Each row: the query, then its top {NEIGHBOURS} neighbours with similarity and label; a green outline is a "
        "relevant neighbour, a red one is not. The worst rows show what the embedder confuses."
    )
    for q in chosen:
        query = evaluation.queries[q]
        cells = [thumbnail_cell(Path(query.path), ["query", Path(query.path).name, query.label or "-",
                                                   f"AP@10 {scores[q]:.2f}"])]  # fmt: skip
        for r in range(min(NEIGHBOURS, ranking.positions.shape[1])):
            entry = evaluation.entries[int(ranking.positions[q, r])]
            hit = bool(ranking.relevant[q, r])
            cells.append(
                thumbnail_cell(
                    Path(entry.path),
                    [f"#{r + 1} {ranking.similarities[q, r]:.3f}", entry.label or "-"],
                    "#1a7f37" if hit else "#c62828",
                )
            )
        report.add_html(Markup(f'<div class="table-wrap"><table><tr>{"".join(cells)}</tr></table></div>'))
