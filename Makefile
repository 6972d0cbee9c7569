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
test: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/lint-imports
	.venv/bin/python -m pytest $(PYTEST_FLAGS)

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/lint-imports

bench: setup
	.venv/bin/python benchmarks/classification.py
