"""Detection heads and models: CenterNet targets (Gaussian bumps, exact 1 at centres, log radius), heat-map
decoding (best-first local maxima, sub-voxel refinement, radius channel), the focal loss, pixel-component
decoding, and the registered dense detectors (output shapes, the heat-map prior, head lookup)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.apps.detection.heads import (
    WEAK_THRESHOLD,
    CentreHeatmap,
    PixelComponents,
    centre_targets,
    head_for,
)
from medlearn.data.cases import Case
from medlearn.models import create_model, list_models
from medlearn.models.detection import HEATMAP_PRIOR_LOGIT


def _grid(shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)


def _gaussian(shape, centre, sigma: float, peak: float = 1.0) -> np.ndarray:
    return peak * np.exp(-((_grid(shape) - np.asarray(centre)) ** 2).sum(-1) / (2 * sigma**2))


# ---------------------------------------------------------------------------------------------------------------
# Targets


def test_centre_targets_are_one_at_the_centre_voxel_and_gaussian_around_it():
    """Exactly 1 at the rounded centre voxel; exp(-d^2 / 2 sigma^2) from the sub-voxel point with sigma = r / 3
    elsewhere (within 3 sigma), 0 beyond; log radius only at the centre voxel."""
    point, radius = np.array([10.4, 12.6]), 6.0  # sigma 2, reach 6 voxels
    heat, log_radius = centre_targets((32, 32), point[None], np.array([radius]))
    assert heat.dtype == np.float32 and heat.shape == (32, 32)
    assert heat[10, 13] == 1.0
    assert np.count_nonzero(heat == 1.0) == 1
    expected = _gaussian((32, 32), point, 2.0)
    window = (slice(4, 17), slice(7, 20))  # rounded centre +- 6
    inside = np.zeros((32, 32), bool)
    inside[window] = True
    inside[10, 13] = False
    np.testing.assert_allclose(heat[inside], expected[inside], rtol=1e-5)
    assert not heat[~np.pad(np.ones((13, 13), bool), ((4, 15), (7, 12)))].any()
    assert np.count_nonzero(log_radius) == 1
    np.testing.assert_allclose(log_radius[10, 13], np.log(radius), rtol=1e-6)


def test_small_objects_get_a_gaussian_of_at_least_one_voxel():
    """sigma = max(r / 3, 1): a 1.5-voxel object still gets a bump one voxel wide, not a single spike."""
    heat, _ = centre_targets((16, 16, 16), np.array([[8.0, 8.0, 8.0]]), np.array([1.5]))
    np.testing.assert_allclose(heat[9, 8, 8], np.exp(-0.5), rtol=1e-6)
    np.testing.assert_allclose(heat[10, 9, 8], np.exp(-2.5), rtol=1e-6)


def test_overlapping_targets_take_the_maximum_and_keep_both_centres():
    """Two close objects: each voxel is the larger of the two bumps (not their sum), both centres stay 1."""
    points, radii = np.array([[15.0, 15.0], [15.0, 20.0]]), np.array([9.0, 6.0])
    heat, log_radius = centre_targets((32, 32), points, radii)
    bumps = []
    for point, sigma in zip(points, radii / 3, strict=True):
        bump = _gaussian((32, 32), point, sigma)
        bump[np.any(np.abs(_grid((32, 32)) - point) > 3 * sigma, axis=-1)] = 0  # each bump reaches 3 sigma
        bumps.append(bump)
    np.testing.assert_allclose(heat, np.maximum(*bumps), rtol=1e-5, atol=1e-7)
    assert np.any((bumps[0] > 0.05) & (bumps[1] > 0.05))  # they do overlap
    assert heat[15, 15] == heat[15, 20] == 1.0
    assert heat.max() == 1.0
    np.testing.assert_allclose(log_radius[[15, 15], [15, 20]], np.log(radii), rtol=1e-6)
    assert np.count_nonzero(log_radius) == 2


def test_batch_item_draws_targets_from_the_patch_points_and_radii():
    patch = Case(
        image=np.zeros((1, 24, 24), np.float32),
        labels=np.zeros((24, 24), np.uint8),
        points=np.array([[5.0, 6.0]]),
        point_radii=np.array([4.5]),
    )
    image, heat, log_radius = CentreHeatmap().batch_item(patch)
    assert image.shape == (1, 24, 24) and heat.shape == (1, 24, 24) and log_radius.shape == (1, 24, 24)
    assert heat[0, 5, 6] == 1.0
    np.testing.assert_allclose(float(log_radius[0, 5, 6]), np.log(4.5), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Heat-map decoding and loss

TRUTH = np.array([[10.3, 20.6], [40.2, 15.4], [30.7, 45.35]])  # sub-voxel peaks, best first
PEAKS = np.array([0.9, 0.7, 0.5])
RADII = np.array([3.0, 7.5, 12.0])


def _heat_maps(sigma: float) -> np.ndarray:
    """Channel 0: three Gaussian peaks over faint noise; channel 1: log radius at each peak's voxel."""
    shape = (64, 64)
    heat = np.max([_gaussian(shape, t, sigma, p) for t, p in zip(TRUTH, PEAKS, strict=True)], axis=0)
    heat += 0.01 * np.random.default_rng(0).random(shape)
    log_radius = np.zeros(shape)
    for t, r in zip(TRUTH, RADII, strict=True):
        log_radius[tuple(np.rint(t).astype(int))] = np.log(r)
    return np.stack([heat, log_radius])


def test_heatmap_candidates_are_the_peaks_best_first_refined_below_a_voxel():
    """Local maxima ordered by heat, refined to within 0.3 voxel (closer than the peak voxel), radius =
    exp(radius channel) at the peak; the faint noise only adds candidates after the real ones."""
    maps = _heat_maps(sigma=1.0)  # the targets' smallest sigma
    points, scores, radii = CentreHeatmap().candidates(maps, max_candidates=50)
    assert points.shape[1] == 2 and len(points) == len(scores) == len(radii) > 3
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(points[:3], TRUTH, atol=0.3)
    assert np.all(np.abs(points[:3] - TRUTH).max(axis=1) < np.abs(np.rint(TRUTH) - TRUTH).max(axis=1))
    np.testing.assert_allclose(scores[:3], maps[0][tuple(np.rint(TRUTH).astype(int).T)])  # heat at the peak voxel
    np.testing.assert_allclose(radii[:3], RADII, rtol=1e-9)
    assert scores[3] < 0.05


def test_heatmap_refinement_stays_below_0_3_voxel_for_wide_peaks():
    points, _, _ = CentreHeatmap().candidates(_heat_maps(sigma=2.0), max_candidates=3)
    np.testing.assert_allclose(points, TRUTH, atol=0.3)


def test_heatmap_candidates_respect_max_candidates():
    points, scores, radii = CentreHeatmap().candidates(_heat_maps(sigma=1.0), max_candidates=2)
    assert len(points) == len(scores) == len(radii) == 2
    np.testing.assert_allclose(points, TRUTH[:2], atol=0.3)
    empty = CentreHeatmap().candidates(np.zeros((2, 16, 16, 16)), max_candidates=5)
    assert empty[0].shape == (0, 3) and len(empty[1]) == len(empty[2]) == 0


def _batch(heat: np.ndarray, log_radius: np.ndarray) -> tuple[torch.Tensor, ...]:
    return (
        torch.zeros((1, 1, *heat.shape)),
        torch.from_numpy(heat[None, None]),
        torch.from_numpy(log_radius[None, None]),
    )


def test_focal_loss_prefers_logits_that_match_the_target():
    """Logits reproducing the heat map (and log radius) score lower than flat logits at the prior."""
    heat, log_radius = centre_targets((32, 32), np.array([[8.0, 9.0], [20.5, 22.0]]), np.array([4.0, 6.0]))
    batch = _batch(heat, log_radius)
    clipped = np.clip(heat, 1e-3, 1 - 1e-3)
    matching = torch.from_numpy(np.stack([np.log(clipped / (1 - clipped)), log_radius])[None]).float()
    flat = torch.zeros((1, 2, 32, 32))
    flat[:, 0] = HEATMAP_PRIOR_LOGIT
    head = CentreHeatmap()
    good, bad = head.loss(matching, batch), head.loss(flat, batch)
    assert torch.isfinite(good) and torch.isfinite(bad)
    assert float(good) < 0.5 * float(bad)
    wrong_radius = matching.clone()
    wrong_radius[:, 1] += 1.0
    assert float(head.loss(wrong_radius, batch)) > float(good)  # the radius channel is trained too


def test_focal_loss_is_finite_on_a_batch_without_objects():
    """A negative patch (no centres): the loss only pushes the heat down, finite with finite gradients."""
    heat = np.zeros((16, 16), np.float32)
    logits = torch.full((1, 2, 16, 16), HEATMAP_PRIOR_LOGIT, requires_grad=True)
    loss = CentreHeatmap().loss(logits, _batch(heat, heat.copy()))
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    assert torch.isfinite(logits.grad).all() and float(logits.grad[:, 0].min()) > 0  # lower every logit
    lower = CentreHeatmap().loss(torch.full((1, 2, 16, 16), -8.0), _batch(heat, heat.copy()))
    assert float(lower) < float(loss.detach())


def test_heatmap_activation_is_sigmoid_heat_and_raw_log_radius():
    logits = torch.tensor([[[[0.0, 2.0]], [[1.5, -0.5]]]])
    out = CentreHeatmap().activation(logits)
    torch.testing.assert_close(out[:, 0], torch.sigmoid(logits[:, 0]))
    torch.testing.assert_close(out[:, 1], logits[:, 1])


# ---------------------------------------------------------------------------------------------------------------
# Pixel components


def _probability_maps(probability: np.ndarray) -> np.ndarray:
    return np.stack([1 - probability, probability])


def _disc(shape, centre, radius: float) -> np.ndarray:
    return np.linalg.norm(_grid(shape) - np.asarray(centre, float), axis=-1) <= radius


def test_pixel_components_one_candidate_per_strong_blob_at_its_centroid_scored_by_its_peak():
    """Two separate blobs with weak halos: two candidates (halos are part of them, not extra), at the blobs'
    centroids, scored by their peak probability; a weak-only region is a low-score candidate of its own."""
    shape = (48, 48)
    probability = np.zeros(shape)
    probability[_disc(shape, (12, 12), 6)] = 0.3  # halo
    probability[_disc(shape, (12, 12), 4)] = 0.8
    probability[12, 12] = 0.95
    probability[_disc(shape, (34, 30), 5)] = 0.6
    probability[34, 30] = 0.7
    probability[38:43, 5:10] = 0.3  # weak only: never reaches 0.5
    points, scores, radii = PixelComponents().candidates(_probability_maps(probability), max_candidates=10)
    assert len(points) == 3
    np.testing.assert_allclose(scores, [0.95, 0.7, 0.3])
    np.testing.assert_allclose(points, [[12, 12], [34, 30], [40, 7]], atol=1e-9)
    np.testing.assert_allclose(radii[0], np.sqrt(_disc(shape, (12, 12), 4).sum() / np.pi))
    assert WEAK_THRESHOLD < scores[2] < 0.5
    top, top_scores, _ = PixelComponents().candidates(_probability_maps(probability), max_candidates=1)
    np.testing.assert_allclose(top, [[12, 12]])
    np.testing.assert_allclose(top_scores, [0.95])


def test_pixel_components_merge_touching_objects_into_one_candidate_a_known_limitation():
    """Connected components cannot split touching objects (why centre-heatmap is the default): two strong discs
    that touch are one candidate between them."""
    shape = (32, 48)
    probability = np.zeros(shape)
    probability[_disc(shape, (16, 16), 6) | _disc(shape, (16, 28), 6)] = 0.9
    points, scores, _ = PixelComponents().candidates(_probability_maps(probability), max_candidates=10)
    assert len(points) == 1
    np.testing.assert_allclose(points[0], [16, 22], atol=1e-9)
    np.testing.assert_allclose(scores, [0.9])


def test_pixel_components_find_nothing_on_background():
    points, scores, radii = PixelComponents().candidates(_probability_maps(np.full((8, 8, 8), 0.1)), max_candidates=5)
    assert points.shape == (0, 3) and len(scores) == len(radii) == 0


# ---------------------------------------------------------------------------------------------------------------
# Models


def test_detection_models_are_registered_for_detection():
    names = {entry.name for entry in list_models("detection")}
    assert {"centre-heatmap", "pixel-components"} <= names


@pytest.mark.parametrize(
    ("name", "dims", "depth", "shape", "head"),
    [
        ("centre-heatmap", 2, 3, (2, 1, 32, 40), CentreHeatmap),
        ("pixel-components", 3, 2, (1, 1, 16, 12, 8), PixelComponents),
    ],
)
def test_detection_models_give_two_channels_on_the_input_grid(name, dims, depth, shape, head):
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=dims, depth=depth, base_channels=8).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 2, *shape[2:])
    assert isinstance(head_for(model), head)
    assert head_for(model).channels == out.shape[1]


def test_centre_heatmap_starts_near_the_prior_of_0_1():
    """The prior logit is added to the heat channel (not the radius): the first heat maps average ~0.1."""
    torch.manual_seed(0)
    model = create_model("centre-heatmap", spatial_dims=2, depth=3).eval()
    images = torch.randn((2, 1, 32, 32))
    with torch.no_grad():
        out, raw = model(images), model.backbone(images)
    torch.testing.assert_close(out[:, 0] - raw[:, 0], torch.full_like(raw[:, 0], HEATMAP_PRIOR_LOGIT))
    torch.testing.assert_close(out[:, 1], raw[:, 1])
    np.testing.assert_allclose(1 / (1 + np.exp(-HEATMAP_PRIOR_LOGIT)), 0.1, rtol=1e-9)
    heat = CentreHeatmap().activation(out)[:, 0]
    assert 0.05 < float(heat.mean()) < 0.25  # 0.5 without the prior


def test_head_for_refuses_a_model_that_is_not_a_detector():
    with pytest.raises(ValueError, match="not a detection model"):
        head_for(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="not a detection model"):
        head_for(create_model("unet", spatial_dims=2, depth=2, base_channels=4))
