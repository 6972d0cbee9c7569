"""Contract of every classification model in the zoo: shapes, gradients, bf16/channels_last, Grad-CAM."""

from __future__ import annotations

import warnings

import pytest
import torch
from monai.visualize import GradCAM
from torch import nn

from medlearn.engine.task import model_objective
from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models

ZOO = ["cls-shallow", "resnet10", "resnet18", "resnet34", "densenet121", "cls-multires", "cls-synergic"]


def batch(shape: tuple[int, ...], num_classes: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator)
    y = torch.arange(shape[0]) % num_classes
    return x, y


def assert_finite_grads(model: nn.Module) -> None:
    """Every trainable parameter received a finite gradient, and the model as a whole a nonzero one."""
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert sum(p.grad.abs().sum() for p in model.parameters() if p.requires_grad) > 0


def test_zoo_is_registered_for_classification():
    entries = {entry.name: entry for entry in list_models("classification")}
    for name in ZOO:
        assert name in entries, f"{name} is not a registered classification model"
        assert entries[name].summary


def test_unknown_model_and_bad_dims_are_user_errors():
    with pytest.raises(MedlearnError, match="unknown model"):
        create_model("cls-nonexistent")
    with pytest.raises(MedlearnError, match="spatial_dims"):
        create_model("cls-shallow", spatial_dims=4)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_2d_shape(name, in_channels):
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=3).eval()
    x, _ = batch((2, in_channels, 64, 64))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_3d(name):
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=3).train()
    x, y = batch((2, 1, 32, 32, 32))
    assert model(x).shape == (2, 2)
    loss, _ = model_objective(model, x, y, nn.CrossEntropyLoss())
    loss.backward()
    assert_finite_grads(model)


@pytest.mark.parametrize("name", ZOO)
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    x, y = batch((4, 1, 64, 64))
    loss, outputs = model_objective(model, x, y, nn.CrossEntropyLoss())
    assert loss.ndim == 0 and outputs.shape == (4, 2)
    loss.backward()
    assert_finite_grads(model)


@pytest.mark.parametrize("name", ZOO)
def test_bf16_autocast_channels_last_matches_float32(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x, y = batch((2, 1, 64, 64))
    with torch.no_grad():
        reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(x_cl).float()
    assert fast.shape == (2, 2)
    # bf16 keeps ~3 significant digits: a few percent of the logit scale, not a different answer.
    tolerance = 0.1 * reference.abs().max().item() + 2e-3
    assert (fast - reference).abs().max().item() <= tolerance

    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model_objective(model, x_cl, y, nn.CrossEntropyLoss())
    assert torch.isfinite(loss)
    loss.backward()
    assert_finite_grads(model)


@pytest.mark.parametrize("name", ZOO)
def test_gradcam_layer_gives_input_sized_map(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert model.gradcam_layer in dict(model.named_modules())
    x, _ = batch((2, 1, 64, 48))
    cam = GradCAM(nn_module=model, target_layers=model.gradcam_layer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. MONAI's "not all target_layers exist" or hook warnings
        heatmap = cam(x)
    assert heatmap.shape == (2, 1, 64, 48)
    assert torch.isfinite(heatmap).all()
