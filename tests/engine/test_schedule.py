"""Default optimiser groups and the per-step warm-up + cosine learning rate."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medlearn.engine.config import TrainConfig
from medlearn.engine.schedule import default_optimizer, parameter_groups, resize_schedule, schedule_for


def expected_factor(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / (total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def test_warmup_then_cosine_per_step():
    model = nn.Linear(3, 2)
    config = TrainConfig(epochs=4, lr=0.1, warmup_epochs=1.5, min_lr_ratio=0.1, weight_decay=0.0)
    optimizer = default_optimizer(model, config)
    scheduler = schedule_for(optimizer, config, steps_per_epoch=4)  # warm-up 6 steps of 16
    seen = []
    for _ in range(16):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.1 * expected_factor(s, 6, 16, 0.1) for s in range(16)]
    assert seen == pytest.approx(expected, rel=1e-9)
    # anchor values that do not depend on the formula above
    assert seen[0] == pytest.approx(0.1 / 6)
    assert seen[5] == pytest.approx(0.1) and seen[6] == pytest.approx(0.1)
    assert seen[11] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))  # half-way through the cosine
    assert all(a >= b for a, b in zip(seen[6:], seen[7:], strict=False))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # reaches the floor after the last step


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm([4, 2, 2]), nn.Linear(16, 2)
    )
    groups = parameter_groups(model, weight_decay=0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    free = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[4].weight)}
    # LayerNorm's weight is 3-D here: excluded because it belongs to a norm layer, not by its shape
    assert id(model[3].weight) in free and id(model[1].weight) in free and id(model[0].bias) in free
    assert len(decayed) + len(free) == len(list(model.parameters()))
    optimizer = default_optimizer(model, TrainConfig(weight_decay=0.05))
    assert isinstance(optimizer, torch.optim.AdamW)


def test_resized_schedule_reaches_its_floor_at_the_new_end_and_survives_a_state_round_trip():
    model = nn.Linear(3, 2)
    config = TrainConfig(epochs=100, lr=0.1, warmup_epochs=0.0, min_lr_ratio=0.1, weight_decay=0.0)
    optimizer = default_optimizer(model, config)
    scheduler = schedule_for(optimizer, config, steps_per_epoch=4)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] > 0.099  # 4 of 400 steps: still near the peak
    resize_schedule(scheduler, 8)
    state = scheduler.state_dict()
    restored = schedule_for(default_optimizer(model, config), config, steps_per_epoch=4)
    restored.load_state_dict(state)
    assert restored.lr_lambdas[0].total_steps == 8
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
