"""Patch sampling: foreground oversampling, determinism by index, slice-wise 2D patches, small cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.data.cases import Case
from medlearn.data.patches import PatchAugmentation, PatchDataset, patch_loader


def _sparse_case() -> Case:
    """A 64^3 volume with a 3^3 lesion: 0.01% foreground, like a small real lesion."""
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[50:53, 10:13, 30:33] = 1
    image = np.random.default_rng(0).normal(size=(1, 64, 64, 64)).astype(np.float32)
    return Case(image=image, labels=labels, name="sparse")


def _share_with_foreground(dataset: PatchDataset, n: int = 200) -> float:
    return float(np.mean([dataset[i][1].any().item() for i in range(n)]))


def test_foreground_oversampling_makes_small_lesions_visible():
    case = _sparse_case()
    uniform = _share_with_foreground(PatchDataset([case], [16, 16, 16], foreground_fraction=0.0))
    oversampled = _share_with_foreground(PatchDataset([case], [16, 16, 16], foreground_fraction=0.33))
    always = _share_with_foreground(PatchDataset([case], [16, 16, 16], foreground_fraction=1.0))
    assert uniform < 0.05
    assert 0.2 < oversampled < 0.5
    assert always == 1.0


def test_patches_are_a_function_of_their_index_and_seed():
    case = _sparse_case()
    first = PatchDataset([case], [16, 16, 16], seed=3)
    again = PatchDataset([case], [16, 16, 16], seed=3)
    other = PatchDataset([case], [16, 16, 16], seed=4)
    assert torch.equal(first[17][0], again[17][0])
    assert not torch.equal(first[17][0], other[17][0])


def test_slice_wise_plan_takes_2d_patches_from_a_volume_and_pads_small_cases():
    labels = np.zeros((20, 24, 6), np.uint8)
    labels[5:9, 5:9, 2] = 1
    case = Case(image=np.ones((2, 20, 24, 6), np.float32), labels=labels, name="thick")
    dataset = PatchDataset([case], [32, 32], slice_axis=2, foreground_fraction=1.0, augment=False)
    image, target = dataset[0]
    assert image.shape == (2, 32, 32) and target.shape == (32, 32)
    assert int(target.sum()) == 16  # the whole lesion slice, padded out to the patch


def test_augmentation_flips_image_and_labels_together():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    labels = (image[0] > 7).astype(np.uint8)
    flipped_image, flipped_labels = PatchAugmentation(flips=(0,)).apply(image, labels)
    np.testing.assert_array_equal(flipped_labels, (flipped_image[0] > 7).astype(np.uint8))
    assert flipped_image[0, 0, 0] == 12


def test_intensity_augmentations_change_the_image_only_and_are_reproducible():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 16, 16)).astype(np.float32)
    labels = (image[0] > 0).astype(np.uint8)
    augmentation = PatchAugmentation(noise_std=0.1, blur_sigma=1.0, brightness=1.2, contrast=0.8, gamma=1.3)
    out, out_labels = augmentation.apply(image, labels)
    again, _ = augmentation.apply(image, labels)
    np.testing.assert_array_equal(out, again)  # the noise comes from the sampled seed, not a global RNG
    np.testing.assert_array_equal(out_labels, labels)
    assert out.std() < image.std()  # blur and lower contrast dominate
    unchanged, _ = PatchAugmentation().apply(image, labels)
    np.testing.assert_array_equal(unchanged, image)


def test_rotation_moves_image_and_labels_together():
    labels = np.zeros((32, 32), np.uint8)
    labels[4:10, 14:18] = 1  # a bar near the top edge
    image = labels[None].astype(np.float32) * 5
    half_turn = PatchAugmentation(angle=np.pi)  # about the patch centre
    out, out_labels = half_turn.crop(image, labels, (0, 0), (32, 32))
    assert out_labels[22:28, 14:18].all() and not out_labels[4:10].any()
    np.testing.assert_array_equal(out[0] > 2.5, out_labels.astype(bool))
    zoomed, zoomed_labels = PatchAugmentation(zoom=1.4).crop(image, labels, (0, 0), (32, 32))
    assert zoomed_labels.sum() > labels.sum() * 1.5


def test_zooming_out_brings_in_the_tissue_around_the_patch_not_a_mirror_image():
    rows = np.arange(64, dtype=np.float32)[:, None].repeat(64, axis=1)  # intensity = row index
    labels = (rows < 12).astype(np.uint8)  # a structure just above the patch's top edge (row 16)
    out, out_labels = PatchAugmentation(angle=0.3, zoom=0.7).crop(rows[None], labels, (16, 16), (32, 32))
    assert out.shape == (1, 32, 32) and out_labels.shape == (32, 32)
    assert out.min() < 10 and out.max() > 50  # rows from beyond the patch, where mirroring would stay in 16-47
    assert out_labels.any()  # the structure outside the patch turned into view ...
    np.testing.assert_array_equal(out_labels.astype(bool)[2:-2, 2:-2], (out[0] < 11.5)[2:-2, 2:-2])  # ... labelled
    plain, plain_labels = PatchAugmentation().crop(rows[None], labels, (16, 16), (32, 32))
    np.testing.assert_array_equal(plain[0], rows[16:48, 16:48])
    assert not plain_labels.any()


def test_rotation_at_the_edge_of_a_case_reflects_image_and_labels_alike():
    """Only beyond the case's edge is content reflected, and then labels are reflected like the image."""
    labels = np.zeros((32, 32), np.uint8)
    labels[0:4, :] = 1  # a structure along the edge: zooming out reflects it into view beyond the edge
    image = labels[None].astype(np.float32) * 5
    out, out_labels = PatchAugmentation(angle=np.pi / 6, zoom=0.7).crop(image, labels, (0, 0), (32, 32))
    np.testing.assert_array_equal(out[0] > 2.5, out_labels.astype(bool))
    assert out_labels.sum() > 0.75 * labels.sum()  # a 0.7x zoom alone would keep about half


def test_sampled_augmentations_follow_their_probabilities():
    rng = np.random.default_rng(1)
    drawn = [PatchAugmentation.sample(rng, 2) for _ in range(2000)]
    assert 0.25 < np.mean([a.gamma != 1.0 for a in drawn]) < 0.35
    assert 0.07 < np.mean([a.noise_std > 0 for a in drawn]) < 0.13
    assert 0.45 < np.mean([0 in a.flips for a in drawn]) < 0.55


def test_loader_yields_batches_per_epoch_and_is_reproducible_under_its_seed():
    dataset = PatchDataset([_sparse_case()], [8, 8, 8])
    batches = list(patch_loader(dataset, batch_size=4, batches_per_epoch=3, seed=1))
    assert len(batches) == 3 and batches[0][0].shape == (4, 1, 8, 8, 8)
    again = list(patch_loader(dataset, batch_size=4, batches_per_epoch=3, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))


def test_cases_without_masks_are_refused():
    from medlearn.errors import MedlearnError

    with pytest.raises(MedlearnError, match="needs a mask"):
        PatchDataset([Case(np.ones((1, 8, 8, 8), np.float32), None, "x")], [8, 8, 8])


def test_a_second_image_points_and_boxes_move_with_the_patch():
    """Every named array of a case goes through the same crop, rotation and flip (paired and box-aware crops)."""
    labels = np.zeros((48, 48), np.uint8)
    labels[10:14, 30:38] = 1  # a bar; its box and its centre are annotated too
    image = labels[None].astype(np.float32) * 5
    case = Case(
        image=image,
        labels=labels,
        extra_images={"moving": image * 2},
        points=np.array([[11.5, 33.5], [40.0, 2.0]]),  # the bar's centre and a point the crop drops
        boxes=np.array([[10.0, 30.0, 13.0, 37.0]]),
    )
    turned = PatchAugmentation(angle=np.pi, flips=(1,))
    patch = turned.apply_case(turned.crop_case(case, (8, 8), (32, 32)))
    assert patch.extra_images["moving"].shape == (1, 32, 32)
    np.testing.assert_allclose(patch.extra_images["moving"], 2 * patch.image)
    (point,) = patch.points  # the second point left the patch
    rows, cols = np.nonzero(patch.labels)
    np.testing.assert_allclose(point, [rows.mean(), cols.mean()], atol=0.6)  # the centre stayed on the bar
    (box,) = patch.boxes
    np.testing.assert_allclose(box, [rows.min(), cols.min(), rows.max(), cols.max()], atol=1.0)


def test_a_2d_patch_of_a_volume_keeps_only_the_points_on_its_slice():
    case = Case(
        image=np.zeros((1, 16, 16, 4), np.float32),
        labels=np.zeros((16, 16, 4), np.uint8),
        points=np.array([[3.0, 4.0, 1.0], [5.0, 6.0, 2.0]]),
    )
    slice_two = case.slice_along(2, 2)
    assert slice_two.image.shape == (1, 16, 16)
    np.testing.assert_array_equal(slice_two.points, [[5.0, 6.0]])


def _case_with_radii() -> Case:
    """A 2D case with four object centres of distinct radii (voxels), so which ones survive is visible."""
    return Case(
        image=np.zeros((1, 64, 64), np.float32),
        labels=np.zeros((64, 64), np.uint8),
        points=np.array([[31.5, 31.5], [18.0, 31.5], [40.0, 25.0], [2.0, 2.0]]),
        point_radii=np.array([2.0, 3.0, 4.0, 5.0]),
    )


def test_zoom_scales_point_radii_and_drops_them_with_their_points():
    """Objects look ``zoom`` times larger in a zoomed patch; a point pushed out of the patch by the zoom (the
    second: 2 voxels inside the plain crop) leaves with its radius, so radii stay aligned with points."""
    case = _case_with_radii()
    plain = PatchAugmentation().crop_case(case, (16, 16), (32, 32))
    np.testing.assert_allclose(plain.points, [[15.5, 15.5], [2.0, 15.5], [24.0, 9.0]])
    np.testing.assert_allclose(plain.point_radii, [2.0, 3.0, 4.0])
    zoomed = PatchAugmentation(zoom=1.25).crop_case(case, (16, 16), (32, 32))
    np.testing.assert_allclose(zoomed.points, [[15.5, 15.5], [26.125, 7.375]])  # (p - 31.5) * 1.25 + 15.5
    np.testing.assert_allclose(zoomed.point_radii, [2.0 * 1.25, 4.0 * 1.25])
    turned = PatchAugmentation(angle=np.pi / 2, zoom=1.25, flips=(0,))
    patch = turned.apply_case(turned.crop_case(case, (16, 16), (32, 32)))
    assert len(patch.points) == len(patch.point_radii)
    np.testing.assert_allclose(sorted(patch.point_radii), sorted(zoomed.point_radii))  # rotation: same sizes
    assert case.point_radii.tolist() == [2.0, 3.0, 4.0, 5.0]  # the case itself is untouched


def test_a_crop_without_point_radii_keeps_them_absent():
    case = _case_with_radii().with_arrays(point_radii=None)
    assert PatchAugmentation(zoom=1.25).crop_case(case, (16, 16), (32, 32)).point_radii is None


def test_slice_along_keeps_the_radii_of_the_points_on_the_slice():
    case = Case(
        image=np.zeros((1, 16, 16, 4), np.float32),
        labels=np.zeros((16, 16, 4), np.uint8),
        points=np.array([[3.0, 4.0, 1.0], [5.0, 6.0, 2.2], [7.0, 8.0, 1.6]]),
        point_radii=np.array([1.5, 2.5, 3.5]),
    )
    slice_two = case.slice_along(2, 2)
    np.testing.assert_array_equal(slice_two.points, [[5.0, 6.0], [7.0, 8.0]])
    np.testing.assert_array_equal(slice_two.point_radii, [2.5, 3.5])
    assert len(case.slice_along(2, 3).point_radii) == 0


def test_a_case_refuses_point_radii_that_do_not_match_its_points():
    from medlearn.errors import MedlearnError

    image, points = np.zeros((1, 8, 8), np.float32), np.array([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(MedlearnError, match="point_radii needs one value per point"):
        Case(image=image, points=points, point_radii=np.array([1.0]))
    with pytest.raises(MedlearnError, match="point_radii needs one value per point"):
        Case(image=image, point_radii=np.array([1.0]))  # radii without points
    with pytest.raises(MedlearnError, match="point_radii needs one value per point"):
        Case(image=image, points=points, point_radii=np.array([1.0, 2.0])).with_arrays(points=points[:1])


def test_small_cases_are_padded_with_the_background_level_not_with_zero():
    """After a fixed clip + z-score, 0 is mean tissue: a pad of zeros looked like grey matter to a 3D U-Net."""
    image = np.full((2, 10, 10, 4), 3.0, np.float32)
    image[:, :, :, 0] = -1.5  # the darkest level of each channel
    case = Case(image=image, labels=np.zeros((10, 10, 4), np.uint8), name="slab")
    padded = PatchDataset([case], [16, 16, 8], foreground_fraction=0.0, augment=False, fill=(-1.0, -2.0)).cases[0]
    assert padded.image.shape == (2, 16, 16, 8)
    assert np.all(padded.image[0, 10:] == -1.0) and np.all(padded.image[1, :, :, 4:] == -2.0)
    assert np.array_equal(padded.image[:, :10, :10, :4], image)  # the case itself where it was
    by_minimum = PatchDataset([case], [16, 16, 8], foreground_fraction=0.0, augment=False).cases[0]
    assert np.all(by_minimum.image[:, 10:] == -1.5)
