"""Self-contained HTML reports: a task-agnostic page builder, figures, and per-task reports.

``write_classification_report`` (and the figures in ``medlearn.report.plots``) import matplotlib,
so they are loaded on first use.
"""

from medlearn.report.html import Markup, Report, escape, paragraphs, table_html

__all__ = ["Markup", "Report", "escape", "paragraphs", "table_html", "write_classification_report"]


def __getattr__(name: str):
    if name == "write_classification_report":
        from medlearn.report.classification import write_classification_report

        return write_classification_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
