"""Landmark heat maps, the two localisation networks and the template-matching baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.apps.localisation.landmark_cases import LandmarkHeatmaps
from medlearn.data.cases import Case
from medlearn.errors import MedlearnError
from medlearn.evaluation.baselines.landmarks import TemplateMatcher, fit_template_matcher
from medlearn.models import create_model
from medlearn.models.losses import centre_focal_loss


def test_each_landmark_gets_its_own_channel_with_its_peak_at_its_voxel() -> None:
    heads = LandmarkHeatmaps(count=3, sigma=1.5)
    patch = Case(
        image=np.zeros((1, 12, 12, 12), np.float32),
        points=np.array([[2.0, 3.0, 4.0], [9.0, 9.0, 9.0]]),
        point_ids=np.array([2, 0]),
    )
    _, heat = heads.batch_item(patch)
    assert heat.shape == (3, 12, 12, 12)
    assert heat[2, 2, 3, 4] == 1.0 and heat[0, 9, 9, 9] == 1.0
    assert heat[1].max() == 0.0  # landmark 1 is not in this patch
    positions, scores = heads.locate(heat.numpy())
    np.testing.assert_allclose(positions[[0, 2]], [[9, 9, 9], [2, 3, 4]], atol=1e-6)
    assert scores[0] == pytest.approx(1.0)


def test_locate_refines_a_landmark_between_voxels() -> None:
    grid = np.indices((16, 16, 16), dtype=float)
    point = np.array([7.3, 8.6, 6.8])
    heat = np.exp(-sum((g - p) ** 2 for g, p in zip(grid, point, strict=True)) / (2 * 2.0**2))[None]
    positions, _ = LandmarkHeatmaps(1, 2.0).locate(heat)
    np.testing.assert_allclose(positions[0], point, atol=1e-6)  # exact for a Gaussian bump


@pytest.mark.parametrize("name", ["landmark-heatmap", "landmark-triplanar"])
def test_localisers_map_a_volume_to_one_heat_map_per_landmark(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_landmarks=4, spatial_dims=3, depth=2, base_channels=8)
    out = model(torch.randn(2, 1, 16, 24, 8))
    assert out.shape == (2, 4, 16, 24, 8)
    assert 0.05 < float(torch.sigmoid(out.detach()).mean()) < 0.3  # the logit prior: maps start near 0.1


def test_triplanar_rejects_2d_images() -> None:
    with pytest.raises(MedlearnError, match="3D volumes"):
        create_model("landmark-triplanar", num_landmarks=2, spatial_dims=2)


def test_triplanar_trains_on_a_few_slices_through_the_landmarks() -> None:
    torch.manual_seed(0)
    model = create_model("landmark-triplanar", num_landmarks=1, depth=2, base_channels=8, slices_per_axis=2)
    heat = torch.zeros(1, 1, 16, 16, 16)
    heat[0, 0, 5, 6, 7] = 1.0
    seen = []
    for axis, net in enumerate(model.nets):
        net.register_forward_hook(lambda module, args, output, axis=axis: seen.append((axis, args[0].shape[0])))

    def criterion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert (target >= 1).any()  # one of the two slices scored per axis goes through the landmark
        return centre_focal_loss(logits, target)[0]

    loss, _ = model.training_loss(torch.randn(1, 1, 16, 16, 16), heat, criterion)
    loss.backward()
    assert torch.isfinite(loss) and [count for _, count in seen] == [2, 2, 2]
    assert all(p.grad is not None for net in model.nets for p in net.parameters() if p.requires_grad)


def test_template_matching_finds_a_shifted_landmark() -> None:
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    images, landmarks = [], []
    for shift in ([0, 0, 0], [2, -1, 1], [-1, 2, 0]):
        volume = rng.normal(0, 0.1, (32, 32, 32)).astype(np.float32)
        point = np.array([14.0, 16.0, 15.0]) + shift
        volume[tuple(slice(int(p) - 2, int(p) + 3) for p in point)] += 3.0  # a bright cube marks the landmark
        volume[int(point[0]) - 2 : int(point[0]) + 3, int(point[1]) + 2, int(point[2])] += 3.0  # asymmetric
        images.append(volume[None])
        landmarks.append(point[None])
    matcher = fit_template_matcher(images[:2], [affine] * 2, landmarks[:2], ["a"])
    found, scores = matcher.locate(images[2], affine)
    np.testing.assert_allclose(found[0], landmarks[2][0], atol=0.6)
    assert scores[0] > 0.8


def test_template_matcher_round_trips_through_npz(tmp_path) -> None:
    matcher = TemplateMatcher(("a", "b"), np.ones((2, 3, 3, 3), np.float32), np.zeros((2, 3)), np.array([5.0, 7.0]))
    loaded = TemplateMatcher.load(matcher.save(tmp_path / "baseline.npz"))
    assert loaded.names == ("a", "b") and np.array_equal(loaded.search_mm, [5.0, 7.0])
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(MedlearnError, match="template-matching"):
        TemplateMatcher.load(tmp_path / "bad.npz")
