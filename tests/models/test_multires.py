"""cls-multires: tracts really run at their resolutions, and the auxiliary losses are added as documented."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model


def inputs(batch: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, 1, size, size, generator=generator), torch.arange(batch) % 2


def test_each_tract_sees_its_resolution():
    torch.manual_seed(0)
    model = create_model("cls-multires", resolutions=(1, 2, 4), depth=3).eval()
    shapes = {}
    for index, tract in enumerate(model.tracts):
        tract.features.register_forward_hook(lambda _m, _i, out, index=index: shapes.__setitem__(index, out.shape))
    x, _ = inputs()
    with torch.no_grad():
        model(x)
    # depth 3 = three stride-2 stages: 64 / 8 = 8 at full resolution, 4 at 1/2, 2 at 1/4.
    assert [shapes[i][-1] for i in range(3)] == [8, 4, 2]


def test_training_loss_adds_weighted_auxiliary_losses():
    torch.manual_seed(0)
    model = create_model("cls-multires", aux_weight=0.5).train()
    x, y = inputs()
    criterion = nn.CrossEntropyLoss()
    loss, logits = model.training_loss(x, y, criterion)
    assert loss.ndim == 0
    features = model.tract_features(x)
    fused = criterion(model.classifier(torch.cat(features, dim=1)), y)
    aux = sum(criterion(head(f), y) for head, f in zip(model.aux_classifiers, features, strict=True))
    torch.testing.assert_close(loss, fused + 0.5 * aux)
    torch.testing.assert_close(logits, model(x))
    assert aux > 0


def test_auxiliary_gradients_reach_every_tract_and_head():
    torch.manual_seed(0)
    model = create_model("cls-multires").train()
    x, y = inputs()
    loss, _ = model.training_loss(x, y, nn.CrossEntropyLoss())
    loss.backward()
    parts = [*model.tracts, *model.aux_classifiers, model.classifier]
    for part in parts:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
        assert sum(p.grad.abs().sum() for p in part.parameters()) > 0


def test_single_resolution_is_a_plain_cnn():
    torch.manual_seed(0)
    model = create_model("cls-multires", resolutions=(1,)).train()
    assert len(model.tracts) == 1 and model.aux_classifiers is None
    x, y = inputs()
    criterion = nn.CrossEntropyLoss()
    loss, _ = model.training_loss(x, y, criterion)
    torch.testing.assert_close(loss, criterion(model(x), y))


def test_gradcam_uses_the_finest_tract():
    model = create_model("cls-multires", resolutions=(4, 1, 2))
    assert model.gradcam_layer.startswith("tracts.1.")


@pytest.mark.parametrize("resolutions", [(), (0, 1), (2, 2)])
def test_bad_resolutions_are_user_errors(resolutions):
    with pytest.raises(MedlearnError, match="resolutions"):
        create_model("cls-multires", resolutions=resolutions)
