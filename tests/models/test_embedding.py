"""The classifier trained for retrieval: the supervised contrastive loss on hand-made embeddings, and the model's
combined loss reaching its projection head."""

from __future__ import annotations

import pytest
import torch

from medlearn.models import create_model
from medlearn.models.embedding import supervised_contrastive_loss


def test_supcon_prefers_embeddings_that_gather_by_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    gathered = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3) + 0.01 * torch.randn(6, 2)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 3)
    assert supervised_contrastive_loss(gathered, labels) < supervised_contrastive_loss(mixed, labels)


def test_supcon_without_positives_is_zero_and_keeps_the_graph():
    embeddings = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(embeddings, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and embeddings.grad is not None


def test_retrieval_model_is_a_classifier_whose_loss_trains_the_projection():
    model = create_model("retrieval-supcon", in_channels=1, num_classes=2, base="cls-shallow")
    images, labels = torch.randn(8, 1, 64, 64), torch.tensor([0, 1] * 4)
    assert model(images).shape == (8, 2)
    loss, logits = model.training_loss(images, labels, torch.nn.CrossEntropyLoss())
    loss.backward()
    assert logits.shape == (8, 2) and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.projection.parameters())


def test_nt_xent_prefers_views_that_find_their_partner():
    from medlearn.models.embedding import nt_xent_loss

    first = torch.eye(4)
    assert nt_xent_loss(first, first + 0.01 * torch.randn(4, 4)) < nt_xent_loss(first, first.roll(1, dims=0))
    # with 2 images of 1-hot views: each embedding's partner is identical and the 2 others orthogonal
    z = torch.eye(2)
    expected = -torch.log_softmax(torch.tensor([1.0, 0.0, 0.0]) / 0.2, dim=0)[0]
    assert float(nt_xent_loss(z, z)) == pytest.approx(float(expected), rel=1e-5)


def test_self_supervised_encoder_projects_trunk_features_and_bypasses_the_class_head():
    model = create_model("retrieval-simclr", in_channels=1, base="cls-shallow", projection=16)
    captured = []
    handle = model.feature_layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    projections = model(torch.randn(4, 1, 64, 64))
    handle.remove()
    assert projections.shape == (4, 16) and captured[0].shape == (4, model.head.in_features)
    projections.sum().backward()
    assert model.head.weight.grad is None  # the classifier's own head is not trained
    assert all(p.grad is not None for p in model.projection.parameters())
