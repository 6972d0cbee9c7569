"""Every zoo model learns on real brain-MRI slices (Br35H): its training loss falls within a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.visualize import GradCAM
from PIL import Image
from torch import nn

from medlearn.engine.task import model_objective
from medlearn.models import create_model

IMAGES_PER_CLASS = 64
SIZE = 64


@pytest.fixture(scope="module")
def br35h_batches(br35h_root: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """64 "no" + 64 "yes" slices as grey 64x64 in [0, 1], shuffled once (seeded) into 4 batches of 32."""
    images, labels = [], []
    for label, folder in enumerate(["no", "yes"]):
        paths = sorted((br35h_root / folder).glob("*.jpg"))[:IMAGES_PER_CLASS]
        assert len(paths) == IMAGES_PER_CLASS
        for path in paths:
            with Image.open(path) as image:
                grey = image.convert("L").resize((SIZE, SIZE), Image.BILINEAR)
            images.append(np.asarray(grey, dtype=np.float32) / 255.0)
            labels.append(label)
    x = torch.from_numpy(np.stack(images))[:, None]
    y = torch.tensor(labels)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return list(zip(x[order].split(32), y[order].split(32), strict=True))


def train_losses(model: nn.Module, batches, steps: int, lr: float) -> list[float]:
    """AdamW over the fixed batches in turn; the loss of every step."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss, _ = model_objective(model, x, y, criterion)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


# (model, input size, steps, learning rate): deep models train on 32x32 so each case stays a few seconds.
CASES = [
    pytest.param("cls-shallow", 64, 32, 3e-3, id="cls-shallow"),
    pytest.param("cls-multires", 64, 16, 3e-3, id="cls-multires"),
    pytest.param("resnet10", 32, 12, 1e-3, id="resnet10"),
    pytest.param("resnet18", 32, 12, 1e-3, id="resnet18"),
    pytest.param("resnet34", 32, 12, 1e-3, id="resnet34", marks=pytest.mark.slow),
    pytest.param("densenet121", 32, 12, 1e-3, id="densenet121", marks=pytest.mark.slow),
    pytest.param("cls-synergic", 32, 20, 1e-3, id="cls-synergic"),
]


@pytest.mark.parametrize(("name", "size", "steps", "lr"), CASES)
def test_training_loss_falls_on_real_images(br35h_batches, name, size, steps, lr):
    batches = [(F.interpolate(x, size=(size, size), mode="area"), y) for x, y in br35h_batches]
    torch.manual_seed(0)
    model = create_model(name)
    losses = train_losses(model, batches, steps, lr)
    window = len(batches)  # one pass over every batch at the start and at the end
    first, last = np.mean(losses[:window]), np.mean(losses[-window:])
    assert np.isfinite(losses).all()
    assert last < 0.8 * first, f"{name}: loss {first:.3f} -> {last:.3f} in {steps} steps"

    # A trained model's Grad-CAM highlights part of the slice, not a blank (all-zero) map.
    model.eval()
    heatmap = GradCAM(nn_module=model, target_layers=model.gradcam_layer)(batches[0][0][:4])
    assert heatmap.shape == (4, 1, size, size)
    assert heatmap.amax() > 0
