"""DRINet: shapes in 2D/3D, gradients, bfloat16 autocast, size check, and learning on real nuclei."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models


def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


def test_registered_as_segmentation() -> None:
    assert "drinet" in [entry.name for entry in list_models("segmentation")]


def test_forward_shape_2d() -> None:
    _seed()
    model = create_model("drinet", in_channels=1, num_classes=3, spatial_dims=2)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3, 64, 64)


def test_forward_shape_3d() -> None:
    _seed()
    model = create_model("drinet", in_channels=1, num_classes=2, spatial_dims=3, base_channels=8, growth=4)
    assert model(torch.randn(1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_backward_finite_grads_on_all_params() -> None:
    _seed()
    model = create_model("drinet", num_classes=2, base_channels=8, growth=4, layers_per_block=2)
    model(torch.randn(2, 1, 32, 32)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_bfloat16_autocast() -> None:
    _seed()
    model = create_model("drinet", num_classes=2, base_channels=8, growth=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 1, 32, 32))
    assert out.shape == (1, 2, 32, 32)
    assert torch.isfinite(out.float()).all()


def test_bad_size_names_required_multiple() -> None:
    model = create_model("drinet", depth=3)
    with pytest.raises(MedlearnError, match="multiple of 8"):
        model(torch.randn(1, 1, 60, 64))


def test_learns_real_nuclei(shared_data: Path) -> None:
    _seed()
    folder = shared_data / "nuclei-dsb2018"
    image = tifffile.imread(folder / "img2d.tif").astype(np.float32)
    mask = tifffile.imread(folder / "mask2d.tif") > 0
    image = (image - image.mean()) / (image.std() + 1e-6)
    corners = [(0, 0), (128, 192), (256, 64), (320, 320)]
    x = torch.from_numpy(np.stack([image[r : r + 64, c : c + 64] for r, c in corners]))[:, None]
    y = torch.from_numpy(np.stack([mask[r : r + 64, c : c + 64] for r, c in corners])).long()
    assert 0 < y.float().mean() < 1, "crops must contain both nuclei and background"

    model = create_model("drinet", num_classes=2, base_channels=8, growth=4, layers_per_block=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
