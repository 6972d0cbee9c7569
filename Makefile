# The two commands of the README. Each one installs what it needs first.
.PHONY: setup lock demo test lint bench

setup:
	@bash scripts/setup.sh

# Rewrites requirements.lock with the newest versions pyproject.toml's ranges admit (run make test before committing it).
lock:
	@bash scripts/lock.sh

demo: setup
	.venv/bin/medlearn demo

# PYTEST_FLAGS=--require-data (CI): tests whose real data are missing fail instead of skipping.
# Two pytest-xdist workers (each with half the cores' threads, see tests/conftest.py); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/lint-imports
	.venv/bin/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_FLAGS)

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/lint-imports

bench: setup
	.venv/bin/python benchmarks/classification.py
