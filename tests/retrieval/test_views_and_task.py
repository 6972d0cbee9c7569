"""Self-supervised retrieval training pieces: the two views of an image and the contrastive task's validation."""

from __future__ import annotations

import numpy as np
import torch

from medlearn.apps.retrieval.contrastive_task import ContrastiveTask
from medlearn.apps.retrieval.views import TwoViewDataset, fixed_views
from medlearn.models import create_model


def _arrays(n: int = 6, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images = [
        ((yy - rng.integers(10, 38)) ** 2 + (xx - rng.integers(10, 38)) ** 2 < 80).astype(np.float32) for _ in range(n)
    ]
    return np.stack(images)[:, None]


def test_two_views_of_an_image_differ_and_reproduce_under_a_seed():
    arrays = _arrays()
    dataset = TwoViewDataset(arrays, "MR")
    torch.manual_seed(3)
    first, second = dataset[0]
    assert first.shape == second.shape == arrays[0].shape and not torch.equal(first, second)
    torch.manual_seed(3)
    again = dataset[0]
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    a, b = fixed_views(arrays, "MR", seed=1)
    c, _ = fixed_views(arrays, "MR", seed=1)
    assert a.shape == (6, 1, 48, 48) and torch.equal(a, c) and not torch.equal(a, b)


def test_validation_scores_view_matching_over_the_whole_held_out_set():
    task = ContrastiveTask(temperature=0.2)
    features = torch.eye(6)
    perfect = [
        (features[:3], features[:3], features[:3], features[:3]),
        (features[3:], features[3:], features[3:], features[3:]),
    ]
    shuffled = [(features, features.roll(1, dims=0), features, features.roll(1, dims=0))]
    assert task.validation_metrics(perfect)["view_top1"] == 1.0
    assert task.validation_metrics(shuffled)["view_top1"] == 0.0
    assert task.validation_metrics(perfect)["loss"] < task.validation_metrics(shuffled)["loss"]


def test_a_training_step_and_validation_step_run_on_the_encoder():
    model = create_model("retrieval-simclr", in_channels=1, base="cls-shallow", projection=8)
    task = ContrastiveTask()
    views = tuple(torch.randn(4, 1, 64, 64) for _ in range(2))
    result = task.training_step(model, views)
    result.loss.backward()
    assert result.batch_size == 4 and torch.isfinite(result.loss)
    with torch.no_grad():
        outputs = task.validation_step(model.eval(), views)
    assert [o.shape[0] for o in outputs] == [4, 4, 4, 4] and outputs[2].shape[1] == model.head.in_features
