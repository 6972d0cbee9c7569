"""Speed helpers keep values and only change layout / numerics where asked."""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn

from medlearn.engine.performance import (
    autocast_context,
    bf16_supported,
    maybe_compile,
    resolve_precision,
    set_threads,
    to_channels_last,
)
from medlearn.engine.trainer import move_to_device, to_cpu_float


def test_channels_last_for_2d_and_3d_models_and_tensors():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv3d(2, 2, 1), nn.Linear(3, 3))
    before = [p.clone() for p in model.parameters()]
    to_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert to_channels_last(torch.zeros(2, 3, 4, 5)).is_contiguous(memory_format=torch.channels_last)
    labels = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    assert to_channels_last(labels) is labels


def test_precision_resolution_and_autocast():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") == ("bf16" if bf16_supported() else "fp32")
    layer = nn.Linear(4, 4)
    with autocast_context("bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast_context("fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_threads_and_compile_switches():
    previous = set_threads(1)
    try:
        assert torch.get_num_threads() == 1
        assert set_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        set_threads(previous)
    model = nn.Linear(2, 2)
    assert maybe_compile(model, False) is model


def test_batches_of_nested_structures_are_moved_and_outputs_upcast():
    Pair = namedtuple("Pair", "image label")
    batch = {"x": torch.zeros(2, 1, 4, 4), "meta": [Pair(torch.zeros(2, 1, 4, 4), torch.ones(2)), "id"]}
    moved = move_to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["x"], batch["x"])
    assert isinstance(moved["meta"][0], Pair) and moved["meta"][1] == "id"
    out = to_cpu_float((torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.long)))
    assert out[0].dtype == torch.float32 and out[1].dtype == torch.long
