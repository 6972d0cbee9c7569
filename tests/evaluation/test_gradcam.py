from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlearn.evaluation.gradcam import gradcam_maps, overlay


def _data(n: int, generator: torch.Generator):
    """Class 1 holds a bright 8x8 square at a random place (the lesion); class 0 is background only."""
    images = torch.rand(n, 1, 32, 32, generator=generator) * 0.3
    labels = torch.randint(0, 2, (n,), generator=generator)
    corners = torch.randint(0, 24, (n, 2), generator=generator)
    for i in range(n):
        if labels[i]:
            r, c = corners[i].tolist()
            images[i, 0, r : r + 8, c : c + 8] += 1.0
    return images, labels, corners


def test_gradcam_highlights_the_lesion_that_decides_the_class():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    model.gradcam_layer = "2"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        images, labels, _ = _data(64, generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    images, labels, corners = _data(32, generator)
    assert (model(images).argmax(1) == labels).float().mean() > 0.9
    cams = gradcam_maps(model, images, class_index=1)
    assert cams.shape == (32, 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1
    lesions = labels.nonzero().flatten().tolist()
    for i in lesions:
        r, c = corners[i].tolist()
        inside = cams[i, r : r + 8, c : c + 8].mean()
        assert inside > 2 * cams[i].mean(), f"image {i}: the map should be strongest on the lesion"


def test_overlay_is_an_rgb_image_of_the_same_size():
    image = np.linspace(0, 1, 64 * 48).reshape(64, 48)
    cam = np.zeros((64, 48))
    cam[:10, :10] = 1
    rgb = overlay(image, cam)
    assert rgb.shape == (64, 48, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[-1, -1])
