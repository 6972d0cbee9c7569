"""Export of a network to ONNX and torch.export: the check against the eager network, the self-description, the
batch axis left free, and nothing written when the check fails."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.inference import export as export_module
from medlearn.inference.export import ExportSpec, OnnxModule, OnnxRunner, export


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _spec(**extra) -> ExportSpec:
    torch.manual_seed(0)
    return ExportSpec(
        SmallNet().eval(), torch.randn(2, 1, 16, 16), "logits", {"task": "test", "classes": '["a"]'}, **extra
    )


def test_onnx_export_matches_the_network_at_any_batch_and_describes_itself(tmp_path):
    spec = _spec(real_inputs=np.random.default_rng(1).normal(size=(5, 1, 16, 16)).astype(np.float32))
    check = export(spec, tmp_path / "m.onnx")
    assert check.max_abs_difference <= check.tolerance and check.exported_ms > 0
    runner = OnnxRunner(tmp_path / "m.onnx")
    assert runner.metadata["task"] == "test" and runner.metadata_json("classes") == ["a"]
    inputs = torch.randn(7, 1, 16, 16)
    np.testing.assert_allclose(runner.run(inputs.numpy()), spec.model(inputs).detach().numpy(), atol=1e-5)
    assert torch.allclose(OnnxModule(runner)(inputs), spec.model(inputs), atol=1e-5)  # the nn.Module face
    with pytest.raises(MedlearnError, match="no medlearn metadata 'plan'"):
        runner.metadata_json("plan")


def test_torch_export_program_round_trips_with_its_description_beside_it(tmp_path):
    spec = _spec()
    check = export(spec, tmp_path / "m.pt2", "pt2")
    assert check.max_abs_difference == pytest.approx(0.0, abs=1e-6)
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    inputs = torch.randn(5, 1, 16, 16)
    assert torch.allclose(program(inputs), spec.model(inputs), atol=1e-6)
    assert json.loads((tmp_path / "m.pt2.json").read_text())["task"] == "test"


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # no difference can pass: the check must refuse
    with pytest.raises(MedlearnError, match="not written"):
        export(_spec(), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
    with pytest.raises(MedlearnError, match="unknown export format"):
        export(_spec(), tmp_path / "m.ts", "torchscript")


def test_a_file_that_is_not_onnx_is_refused_by_name(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(MedlearnError, match="not a loadable ONNX model"):
        OnnxRunner(bad)
