"""What every task's ``export_spec`` shares: the description written into an exported file, and the example input
of a network that a sliding window runs one patch at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import medlearn
from medlearn.engine.checkpoint import checkpoint_weights_file
from medlearn.utils.hashing import file_sha256


def export_metadata(task: str, model: str, run_dir: Path, output: str, **sections: Any) -> dict[str, str]:
    """medlearn version, task, model, the best weights' digest and what the output means, plus each of
    ``sections`` (settings, plan, classes...) as JSON: what a predictor needs to run the file without its run."""
    return {
        "medlearn_version": medlearn.__version__,
        "task": task,
        "model": model,
        "weights_sha256": file_sha256(checkpoint_weights_file(Path(run_dir), "best")),
        **{name: json.dumps(value) for name, value in sections.items()},
        "output": output,
    }


def export_network(model: nn.Module) -> nn.Module:
    """The network as exporters want it: float32, eval mode, contiguous memory."""
    return model.float().eval().to(memory_format=torch.contiguous_format)


def window_example(channels: int, patch_size: Sequence[int]) -> torch.Tensor:
    """Two seeded random patches: the example input of a network a sliding window runs (batch left free)."""
    shape = (2, channels, *patch_size)
    return torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
