from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlearn.data.preload import preload
from medlearn.data.preprocess import ClassificationPreprocessing
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError


@pytest.fixture
def mixed(planted, tmp_path: Path) -> list[Sample]:
    good = [Sample(p, "no") for p in planted["chosen"]["no"][:4]]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].path.read_bytes()[:300])
    nan_volume = tmp_path / "nan.nii.gz"
    data = np.ones((8, 8, 3), np.float32)
    data[2, 2, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan_volume)
    return [*good, Sample(truncated, "no"), Sample(nan_volume, "yes")]


def test_bad_files_are_skipped_and_listed(mixed):
    loaded = preload(mixed, ClassificationPreprocessing(image_size=32), show_progress=False)
    assert loaded.arrays.shape == (4, 1, 32, 32)
    skipped = dict(loaded.skipped)
    assert set(skipped) == {str(mixed[4].path), str(mixed[5].path)}
    assert "non-finite" in skipped[str(mixed[5].path)] or "NaN" in skipped[str(mixed[5].path)]


def test_strict_stops_at_the_first_bad_file(mixed):
    with pytest.raises(MedlearnError) as error:
        preload(mixed, ClassificationPreprocessing(image_size=32), strict=True, show_progress=False)
    assert "truncated.jpg" in str(error.value)


def test_disk_cache_is_reused(mixed, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    first = preload(mixed, ClassificationPreprocessing(image_size=32), cache_dir=cache, show_progress=False)
    import medlearn.data.preload

    monkeypatch.setattr(
        medlearn.data.preload, "load", lambda path: (_ for _ in ()).throw(AssertionError("decoded again"))
    )
    second = preload(mixed, ClassificationPreprocessing(image_size=32), cache_dir=cache, show_progress=False)
    assert np.array_equal(first.arrays, second.arrays)
    assert second.skipped == first.skipped
    # other preprocessing settings are a different cache entry
    with pytest.raises(AssertionError, match="decoded again"):
        preload(mixed, ClassificationPreprocessing(image_size=48), cache_dir=cache, show_progress=False)
    # so is a new version of the preprocessing code with the same settings (no stale arrays after an upgrade)
    monkeypatch.setattr(ClassificationPreprocessing, "code_version", ClassificationPreprocessing.code_version + 1)
    with pytest.raises(AssertionError, match="decoded again"):
        preload(mixed, ClassificationPreprocessing(image_size=32), cache_dir=cache, show_progress=False)


def test_preprocessing_pads_to_square_and_normalises_mr(planted):
    from medlearn.io import load

    image = load(planted["chosen"]["yes"][1])
    array = ClassificationPreprocessing(image_size=64, modality="MR")(image)
    assert array.shape == (1, 64, 64) and array.dtype == np.float32
    assert abs(float(array.mean())) < 0.5  # z-scored


def test_ct_window_presets_and_custom_windows():
    from medlearn.apps.classification.settings import ClassifierSettings
    from medlearn.data.preprocess import parse_ct_window

    assert parse_ct_window("lung") == "lung"
    assert parse_ct_window("40,400") == (40.0, 400.0)
    for bad in ("lungs", "40,-5", "a,b"):
        with pytest.raises(MedlearnError):
            ClassifierSettings(ct_window=bad)


def test_ct_window_is_applied_to_ct_images():
    from pydicom.data import get_testdata_file

    from medlearn.io import load

    ct = load(get_testdata_file("CT_small.dcm"))
    bone = ClassificationPreprocessing(image_size=32, ct_window="bone")(ct)
    lung = ClassificationPreprocessing(image_size=32, ct_window="-600,1500")(ct)
    assert bone.min() >= 0.0 and bone.max() <= 1.0
    assert not np.allclose(bone, lung)
