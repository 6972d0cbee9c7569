"""Grad-CAM finds the discriminative region, leaves the caller's model untouched, and overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.evaluation.gradcam import find_target_layer, gradcam_maps, overlay

SIZE, SQUARE = 32, 8


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Noise images; class 1 holds a bright square at a random place (the only class signal)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.2 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    corners = []
    for i in range(n):
        r, c = torch.randint(0, SIZE - SQUARE, (2,), generator=g).tolist()
        if y[i] == 1:
            x[i, 0, r : r + SQUARE, c : c + SQUARE] += 0.8
        corners.append((r, c))
    return x, y, corners


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def trained() -> TinyCNN:
    torch.manual_seed(0)
    x, y, _ = _images(256, seed=0)
    model = TinyCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread of a busy CPU
    try:
        for _ in range(40):
            idx = torch.randint(0, len(x), (32,))
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.train()  # Grad-CAM must not leave it in eval mode
    return model


def test_cam_is_high_on_the_discriminative_square(trained: TinyCNN) -> None:
    x, y, corners = _images(24, seed=1)
    assert (trained(x).argmax(1) == y).float().mean() > 0.9
    cams = gradcam_maps(trained, x, class_index=1)
    assert cams.shape == (24, SIZE, SIZE) and cams.dtype == np.float32
    assert cams.min() >= 0 and cams.max() <= 1
    positives = [i for i in range(24) if y[i] == 1]
    assert len(positives) >= 5
    for i in positives:
        r, c = corners[i]
        inside = np.zeros((SIZE, SIZE), bool)
        inside[r : r + SQUARE, c : c + SQUARE] = True
        assert cams[i][inside].mean() > 5 * cams[i][~inside].mean()
        peak = np.unravel_index(cams[i].argmax(), cams[i].shape)
        assert r - 2 <= peak[0] < r + SQUARE + 2 and c - 2 <= peak[1] < c + SQUARE + 2


def test_callers_model_is_untouched(trained: TinyCNN) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in trained.parameters()]
    x, _, _ = _images(4, seed=2)
    gradcam_maps(trained, x)
    gradcam_maps(trained, x, class_index=torch.tensor([0, 1, 0, 1]))
    assert trained.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in trained.modules())
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    for old, p in zip(grads, trained.parameters(), strict=True):
        assert (old is None and p.grad is None) or torch.equal(old, p.grad)


def test_per_image_class_index_matches_single_class_calls(trained: TinyCNN) -> None:
    x, _, _ = _images(4, seed=3)
    mixed = gradcam_maps(trained, x, class_index=torch.tensor([1, 0, 1, 0]))
    only_1 = gradcam_maps(trained, x, class_index=1)
    only_0 = gradcam_maps(trained, x, class_index=0)
    np.testing.assert_allclose(mixed[[0, 2]], only_1[[0, 2]], atol=1e-5)
    np.testing.assert_allclose(mixed[[1, 3]], only_0[[1, 3]], atol=1e-5)


def test_target_layer_choice() -> None:
    model = TinyCNN()
    assert find_target_layer(model) == "features.2"  # the last convolution
    model.gradcam_layer = "features.1"
    assert find_target_layer(model) == "features.1"
    with pytest.raises(MedlearnError, match="not a module"):
        gradcam_maps(model, torch.zeros(1, 1, 8, 8), layer="nope")
    with pytest.raises(MedlearnError, match="no convolution"):
        find_target_layer(nn.Linear(2, 2))


def test_overlay_colours_the_hot_region() -> None:
    image = np.linspace(0, 1, 16 * 16).reshape(16, 16)
    cam = np.zeros((16, 16))
    cam[4:8, 4:8] = 1.0
    rgb = overlay(image, cam)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    cold = rgb[12, 12]
    assert cold[0] == cold[1] == cold[2]  # plain grey where the map is zero
    hot = rgb[5, 5].astype(int)
    assert hot.max() - hot.min() > 40  # coloured where the map is high
    with pytest.raises(MedlearnError, match="differ in shape"):
        overlay(image, cam[:8])
