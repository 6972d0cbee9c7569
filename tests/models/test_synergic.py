"""cls-synergic: balanced seeded pairing, synergic gradients into the components, ensemble inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models import create_model
from medlearn.models.synergic import synergic_partners


def inputs(batch: int = 6, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.rand(batch, 1, size, size, generator=generator), torch.arange(batch) % 2


def test_partners_are_half_same_class_and_never_self():
    labels = torch.tensor([0] * 20 + [1] * 12)
    torch.manual_seed(0)
    partners = synergic_partners(labels)
    assert (partners != torch.arange(32)).all()
    assert int((labels[partners] == labels).sum()) == 16


def test_partners_follow_the_global_seed():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    torch.manual_seed(5)
    first = synergic_partners(labels)
    torch.manual_seed(5)
    assert torch.equal(first, synergic_partners(labels))
    draws = {tuple(synergic_partners(labels).tolist()) for _ in range(5)}
    assert len(draws) > 1


def test_partners_of_degenerate_batches():
    torch.manual_seed(0)
    one_class = synergic_partners(torch.zeros(5, dtype=torch.long))
    assert (one_class != torch.arange(5)).all()
    assert synergic_partners(torch.tensor([1])).tolist() == [0]


def test_forward_is_log_of_averaged_component_probabilities():
    torch.manual_seed(0)
    model = create_model("cls-synergic", num_classes=3).eval()
    x, _ = inputs()
    with torch.no_grad():
        logits = model(x)
        probs = [
            F.softmax(head(component(x)), dim=1) for component, head in zip(model.components, model.heads, strict=True)
        ]
    torch.testing.assert_close(logits.softmax(dim=1), torch.stack(probs).mean(dim=0))
    torch.testing.assert_close(logits.exp().sum(dim=1), torch.ones(len(x)))


def test_synergic_loss_corrects_both_components():
    """With a zero classification loss only the synergic signal remains; it must reach both components."""
    torch.manual_seed(0)
    model = create_model("cls-synergic").train()
    x, y = inputs()

    def no_classification_loss(logits, targets):
        return logits.sum() * 0.0

    loss, _ = model.training_loss(x, y, no_classification_loss)
    assert loss > 0
    loss.backward()
    for part in [*model.components, *model.synergic]:
        assert sum(p.grad.abs().sum() for p in part.parameters() if p.grad is not None) > 0


def test_training_loss_is_component_losses_plus_weighted_synergic_loss():
    torch.manual_seed(0)
    model = create_model("cls-synergic", n_components=3).train()
    assert len(model.synergic) == 3  # one synergic network per pair of components
    x, y = inputs()
    criterion = nn.CrossEntropyLoss()
    plain = sum(criterion(head(component(x)), y) for component, head in zip(model.components, model.heads, strict=True))
    model.synergic_weight = 0.0
    torch.testing.assert_close(model.training_loss(x, y, criterion)[0], plain)
    model.synergic_weight = 3.0
    loss, outputs = model.training_loss(x, y, criterion)
    assert loss.ndim == 0 and outputs.shape == (len(x), 2)
    assert loss > plain + 1.0  # three pairs x lambda 3 x BCE (~0.69 untrained)
    loss.backward()
    for part in [*model.components, *model.heads, *model.synergic]:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())


@pytest.mark.parametrize(("kwargs", "problem"), [({"n_components": 1}, "at least 2"), ({"backbone": "vgg"}, "ResNet")])
def test_bad_configuration_is_a_user_error(kwargs, problem):
    with pytest.raises(MedlearnError, match=problem):
        create_model("cls-synergic", **kwargs)
