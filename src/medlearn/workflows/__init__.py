"""End-to-end workflows behind the CLI: data -> split -> train -> evaluate -> report, per task."""
