"""Checkpoints: exact round trip, atomic replacement, clear errors for wrong or damaged files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medlearn.engine import checkpoint as ckpt
from medlearn.engine.checkpoint import (
    load_checkpoint,
    load_training_state,
    load_weights,
    read_metadata,
    save_checkpoint,
)
from medlearn.errors import MedlearnError


def small_net(width: int = 4, classes: int = 2) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.BatchNorm2d(width), nn.Flatten(), nn.LazyLinear(classes))


def built(width: int = 4, classes: int = 2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = small_net(width, classes)
    model(torch.zeros(1, 1, 6, 6))  # materialise the lazy layer
    return model


def test_round_trip_restores_weights_and_state(tmp_path):
    model = built(seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    optimizer.step()
    save_checkpoint(
        tmp_path / "last", model, {"epoch": 3, "optimizer": optimizer.state_dict(), "history": [{"a": 1.0}]}
    )

    other = built(seed=2)
    state = load_checkpoint(tmp_path / "last", other)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, other.state_dict()[name]), name
    assert state["epoch"] == 3 and state["history"] == [{"a": 1.0}]
    restored = torch.optim.AdamW(other.parameters(), lr=0.1)
    restored.load_state_dict(state["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert read_metadata(tmp_path / "last" / "model.safetensors")["epoch"] == "3"


def test_tied_weights_save_and_load(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    source, target = Tied(), Tied()
    save_checkpoint(tmp_path / "ck", source, {"epoch": 1})
    load_weights(target, tmp_path / "ck")
    assert torch.equal(target.head.weight, source.embed.weight)
    assert target.head.weight is target.embed.weight


def test_channels_last_model_saves(tmp_path):
    model = built().to(memory_format=torch.channels_last)
    save_checkpoint(tmp_path / "ck", model, {"epoch": 1})
    assert torch.equal(load_weights(built(seed=5), tmp_path / "ck")[0].weight, model[0].weight)


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last"
    first = built(seed=1)
    save_checkpoint(target, first, {"epoch": 1})

    def crash_mid_write(obj, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, built(seed=2), {"epoch": 2})
    monkeypatch.undo()

    survivor = built(seed=3)
    state = load_checkpoint(target, survivor)
    assert state["epoch"] == 1
    assert torch.equal(survivor[0].weight, first[0].weight)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last"]  # no temp dirs left behind


def test_interrupted_swap_is_recovered(tmp_path):
    target = tmp_path / "last"
    model = built(seed=1)
    save_checkpoint(target, model, {"epoch": 4})
    target.rename(tmp_path / ".last.previous")  # process died between the two renames of a swap
    assert load_training_state(target)["epoch"] == 4
    assert target.is_dir()


def test_mismatched_weights_and_state_pair_is_refused(tmp_path):
    save_checkpoint(tmp_path / "a", built(seed=1), {"epoch": 1})
    save_checkpoint(tmp_path / "b", built(seed=1), {"epoch": 2})
    (tmp_path / "b" / "state.pt").replace(tmp_path / "a" / "state.pt")
    with pytest.raises(MedlearnError, match="epoch 1 but the training state is from epoch 2"):
        load_checkpoint(tmp_path / "a", built())


def test_architecture_mismatch_names_file_and_differences(tmp_path):
    save_checkpoint(tmp_path / "ck", built(width=4), {"epoch": 1})
    wider = built(width=8, seed=3)
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(MedlearnError) as caught:
        load_weights(wider, tmp_path / "ck" / "model.safetensors")
    message = str(caught.value)
    assert "model.safetensors" in message and "architecture" in message
    assert "shape mismatch" in message and "0.weight" in message
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())  # untouched

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

    with pytest.raises(MedlearnError) as caught:
        load_weights(Other(), tmp_path / "ck")
    assert "missing: fc.weight" in caught.value.problem and "unexpected" in caught.value.problem
    assert "saved from Sequential, loading into Other" in caught.value.problem


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_truncated_files_raise_medlearn_error(tmp_path, name):
    save_checkpoint(tmp_path / "ck", built(), {"epoch": 1})
    path = tmp_path / "ck" / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(MedlearnError) as caught:
        load_checkpoint(tmp_path / "ck", built())
    assert caught.value.path == str(path)
    assert "corrupt" in caught.value.problem


def test_garbage_weights_file_and_missing_checkpoint(tmp_path):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(MedlearnError, match="corrupt"):
        load_weights(built(), bad)
    with pytest.raises(MedlearnError, match="not found"):
        load_weights(built(), tmp_path / "nowhere.safetensors")
