"""Inference throughput of a trained classifier by backend: eager fp32, eager bf16 + channels_last, ONNX Runtime."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medlearn.apps.classification.model import TrainedClassifier

BATCH = 256
ROUNDS = 5


def _throughput(run, batch: np.ndarray) -> float:
    run(batch)  # warm-up
    started = time.perf_counter()
    for _ in range(ROUNDS):
        run(batch)
    return ROUNDS * len(batch) / (time.perf_counter() - started)


def measure_inference(run_dir: Path) -> dict:
    classifier = TrainedClassifier.from_run_dir(run_dir)
    size = classifier.preprocessing.image_size
    batch = np.random.default_rng(0).standard_normal((BATCH, classifier.preprocessing.channels, size, size))
    batch = batch.astype(np.float32)
    speeds = {}
    classifier.precision = "fp32"
    speeds["eager_fp32"] = _throughput(lambda b: classifier.logits(b, batch_size=BATCH), batch)
    classifier.precision = "bf16"
    speeds["eager_bf16_channels_last"] = _throughput(lambda b: classifier.logits(b, batch_size=BATCH), batch)
    try:
        import onnxruntime as ort

        model = classifier.model.float().eval().to(memory_format=torch.contiguous_format)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            torch.onnx.export(
                model,
                (torch.from_numpy(batch[:1]),),
                str(path),
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}},
                dynamo=False,
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            speeds["onnxruntime_fp32"] = _throughput(lambda b: session.run(None, {"image": b}), batch)
    except Exception as error:  # noqa: BLE001 - a backend that cannot export is reported, not fatal
        speeds["onnxruntime_error"] = str(error)[:200]
    numeric = {k: v for k, v in speeds.items() if isinstance(v, float)}
    speeds["best"] = max(numeric, key=numeric.get)
    return speeds
