"""Segmentation preprocessing: plan spacing and normalisation, label mapping, and refusals of bad pairs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medlearn.apps.segmentation.cases import class_indices, prepare_case
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.io import load, save
from medlearn.io.geometry import image_from_affine
from medlearn.planning.plan import SegmentationPlan
from medlearn.planning.preparation import normalize_for_plan, prepare_image


def _plan(**changes) -> SegmentationPlan:
    base = SegmentationPlan(
        spatial_dims=3,
        target_spacing=[1.0, 1.0, 2.0],
        patch_size=[16, 16, 8],
        batch_size=2,
        depth=2,
        normalization="zscore",
        labels=[0, 1],
    )
    return dataclasses.replace(base, **changes)


def _volume(array: np.ndarray, spacing=(0.5, 0.5, 2.0)):
    return image_from_affine(array[None].astype(np.float32), np.diag([*spacing, 1.0]), source="v.nii.gz")


def test_ct_normalisation_clips_to_the_foreground_range_then_z_scores():
    plan = _plan(normalization="ct", normalization_params={"clip_low": -100, "clip_high": 200, "mean": 50, "std": 25})
    out = normalize_for_plan(np.array([[-1000.0, 50.0, 1000.0]]), plan)
    np.testing.assert_allclose(out, [[-6.0, 0.0, 6.0]])


def test_zscore_is_per_channel():
    out = normalize_for_plan(np.stack([np.arange(10.0), 100 + 5 * np.arange(10.0)]), _plan())
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-5)


def test_nonzero_zscore_ignores_the_background_so_cropping_does_not_shift_intensities():
    brain = np.random.default_rng(0).normal(100, 10, size=(20, 20))
    small_background = np.pad(brain, 2)[None]
    large_background = np.pad(brain, 30)[None]
    plan = _plan(normalization_params={"nonzero": True})
    a, b = normalize_for_plan(small_background, plan), normalize_for_plan(large_background, plan)
    np.testing.assert_allclose(a[0, 2:-2, 2:-2], b[0, 30:-30, 30:-30], rtol=1e-5)
    assert b[0, 0, 0] == 0.0
    whole = normalize_for_plan(large_background, _plan())  # plain z-score: the brain's values move
    assert abs(float(whole[0, 30:-30, 30:-30].mean()) - float(b[0, 30:-30, 30:-30].mean())) > 0.5


def test_prepare_image_resamples_to_the_plan_spacing():
    image = _volume(np.random.default_rng(0).normal(size=(40, 40, 10)))
    array = prepare_image(image, _plan())
    assert array.shape == (1, 20, 20, 10)  # 0.5 mm -> 1 mm in-plane, slices kept (2 mm already)


def test_non_finite_pixels_and_wrong_channel_count_are_refused():
    bad = np.ones((8, 8, 4))
    bad[1, 1, 1] = np.nan
    with pytest.raises(NonFiniteImageError, match="NaN"):
        prepare_image(_volume(bad), _plan())
    with pytest.raises(MedlearnError, match="expects 2 channel"):
        prepare_image(_volume(np.ones((8, 8, 4))), _plan(channels=2))


def test_unknown_and_non_integer_mask_labels_are_refused():
    mask = _volume(np.array([[[0, 1], [2, 1]]]))
    with pytest.raises(MedlearnError, match=r"labels \[2\] that the plan does not know"):
        class_indices(mask, [0, 1])
    with pytest.raises(MedlearnError, match="non-integer"):
        class_indices(_volume(np.full((2, 2, 1), 0.5)), [0, 1])
    np.testing.assert_array_equal(class_indices(_volume(np.array([[[0, 5], [9, 5]]])), [0, 5, 9]), [[[0, 1], [2, 1]]])


def test_prepare_case_on_a_real_lesion_keeps_every_lesion_voxel_in_the_mask(shared_data, tmp_path):
    sample = Sample(
        path=shared_data / "pyradiomics/breast1_image.nrrd", target=shared_data / "pyradiomics/breast1_label.nrrd"
    )
    image = load(sample.path)
    plan = _plan(target_spacing=list(image.spacing))  # same spacing: no interpolation, exact voxels
    case = prepare_case(sample, plan)
    assert case.image.shape[1:] == case.labels.shape == image.spatial_shape
    assert int(case.labels.sum()) == 143  # the lesion's voxel count from the data README


def test_mask_with_another_geometry_is_an_error_naming_the_mask(shared_data, tmp_path):
    image = load(shared_data / "pyradiomics/breast1_image.nrrd")
    mask = load(shared_data / "pyradiomics/breast1_label.nrrd")
    shifted = dataclasses.replace(mask, affine=mask.affine @ np.diag([1.0, 1.0, 2.0, 1.0]))
    moved = save(image_from_affine(shifted.array, shifted.affine), tmp_path / "moved_label.nrrd")
    with pytest.raises(MedlearnError, match="geometry") as error:
        prepare_case(
            Sample(path=shared_data / "pyradiomics/breast1_image.nrrd", target=moved),
            _plan(target_spacing=list(image.spacing)),
        )
    assert "moved_label.nrrd" in str(error.value)


def test_labels_resampled_by_class_indicators_keep_smooth_boundaries():
    """A disc on 4x-thick slices, brought to a 4x finer slice grid: linear interpolation of the indicator then
    argmax puts the boundary between the thick slices, where nearest neighbour makes a staircase."""
    import numpy as np

    from medlearn.planning.preparation import resample_labels

    indices = np.zeros((16, 16, 4), np.uint8)
    indices[4:12, 4:12, 1:3] = 1
    fine = resample_labels(indices, np.array([1.0, 1.0, 0.25]), (16, 16, 13), num_classes=2)
    assert fine.dtype == np.uint8 and set(np.unique(fine)) == {0, 1}
    along_z = fine[8, 8]
    assert along_z.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]  # boundaries half-way between the slices
    same = resample_labels(indices, np.array([1.0, 1.0, 1.0]), (16, 16, 4), num_classes=2)
    assert same is indices
