"""Self-contained HTML reports: the task-agnostic page builder and figures every task's report uses (the reports
themselves live with their task, ``medlearn.apps.<task>.report``)."""

from medlearn.report.html import Markup, Report, escape, paragraphs, table_html

__all__ = ["Markup", "Report", "escape", "paragraphs", "table_html"]
