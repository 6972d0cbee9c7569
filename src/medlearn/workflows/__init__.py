"""Deprecated location of the task workflows, kept for one release: the README's Python API imported
``medlearn.workflows.classification_run``, ``.classifier`` and ``.segmenter``; they now live in
``medlearn.apps.<task>`` and these modules re-export them."""
