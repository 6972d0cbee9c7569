"""Trained networks as files other runtimes load: ONNX (ONNX Runtime, OpenVINO, TensorRT, ...) and torch.export's
``ExportedProgram`` (``.pt2``, for PyTorch without the model's Python code). TorchScript is deprecated upstream and
not offered.

An export is checked before it is kept: the exported model and the eager one run on the same random inputs at two
batch sizes (a batch axis frozen by mistake fails the second) and the largest absolute difference must stay within
a tolerance relative to the outputs' scale; a failed check writes nothing. Files are written atomically and carry
their own description (ONNX ``metadata_props``; a JSON file beside a ``.pt2``): medlearn version, task, model,
weights digest and whatever the task's predictor needs (class names, preprocessing), so an exported file can
predict without its run folder. :class:`OnnxRunner` loads one back for inference.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.utils.atomic import atomic_path, write_bytes_atomic, write_text_atomic

FORMATS = ("onnx", "pt2")
#: Batch sizes the check runs (the second differs from the example's, and so do its free spatial axes, so a
#: frozen axis is caught).
CHECK_BATCHES = (1, 3)
#: Batch the speed of the eager and the exported model is timed on.
TIMING_BATCH = 8
#: Largest accepted |exported - eager| relative to max(1, largest |eager| output).
TOLERANCE = 1e-3
METADATA_SUFFIX = ".json"


@dataclass(frozen=True)
class ExportSpec:
    """What to export: the network in eval mode, one example input, which input axes vary, and the description
    written into the file (string values; nested values as JSON strings)."""

    model: nn.Module
    example: torch.Tensor
    output_name: str
    metadata: dict[str, str]
    input_name: str = "image"
    #: Input axes that may change size (axis -> name); the batch axis always may.
    dynamic_axes: dict[int, str] = field(default_factory=lambda: {0: "batch"})
    #: Real preprocessed inputs the check runs too (random inputs alone can miss what real intensities exercise).
    real_inputs: np.ndarray | None = None


@dataclass(frozen=True)
class ExportCheck:
    """How an export was verified, and what it costs to run."""

    path: Path
    format: str
    max_abs_difference: float
    tolerance: float
    seconds: float
    #: Milliseconds per example of the eager (fp32) and of the exported model, best of 3 on a batch of 8.
    eager_ms: float
    exported_ms: float

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "max_abs_difference": self.max_abs_difference,
            "tolerance": self.tolerance,
            "seconds": round(self.seconds, 2),
            "eager_ms_per_image": round(self.eager_ms, 3),
            "exported_ms_per_image": round(self.exported_ms, 3),
        }


def export(spec: ExportSpec, path: Path, fmt: str = "onnx", *, opset: int | None = None) -> ExportCheck:
    """Export ``spec`` to ``path`` in ``fmt`` (see :data:`FORMATS`), check it, keep it only if the check passes."""
    if fmt not in FORMATS:
        raise MedlearnError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    model = spec.model.float().eval()
    started = time.perf_counter()
    with _quiet_exporter():
        if fmt == "onnx":
            with atomic_path(path) as tmp:
                _write_onnx(spec, model, tmp, opset)
                check = _check(spec, model, OnnxRunner(tmp).run, path, fmt, time.perf_counter() - started)
            return check
        try:
            program = torch.export.export(model, (spec.example.float(),), dynamic_shapes=_dynamic_shapes(spec, model))
        except Exception as error:  # noqa: BLE001 - torch.export raises many kinds; the user needs one line
            raise MedlearnError(f"torch.export failed: {str(error).splitlines()[0][:300]}") from None
        buffer = io.BytesIO()
        torch.export.save(program, buffer)  # a buffer: torch.export wants file names ending in .pt2, temp files do not
        loaded = torch.export.load(io.BytesIO(buffer.getvalue())).module()

        def run_program(array: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return loaded(torch.from_numpy(array)).float().numpy()

        check = _check(spec, model, run_program, path, fmt, time.perf_counter() - started)
    write_bytes_atomic(path, buffer.getvalue())
    write_text_atomic(path.with_name(path.name + METADATA_SUFFIX), json.dumps(spec.metadata, indent=2) + "\n")
    return check


def _dynamic_shapes(spec: ExportSpec, model: nn.Module) -> dict:
    """The free axes as ``Dim.AUTO``: named bounded dims make the exporter refuse guards it cannot prove (an
    upsampler's ``trunc(2.0 * w) == 2 * w``); AUTO keeps them as run-time checks, and the export check then runs
    other sizes to prove the axes stayed free."""
    dims = dict.fromkeys(spec.dynamic_axes, torch.export.Dim.AUTO)
    argument = next(iter(_forward_parameters(model)))
    return {argument: dims}


def _forward_parameters(model: nn.Module) -> list[str]:
    import inspect

    return [name for name in inspect.signature(model.forward).parameters if name != "self"]


def _write_onnx(spec: ExportSpec, model: nn.Module, path: Path, opset: int | None) -> None:
    import onnx

    try:
        program = torch.onnx.export(
            model,
            (spec.example.float(),),
            dynamo=True,
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_shapes=_dynamic_shapes(spec, model),
            opset_version=opset,
            verbose=False,
        )
    except Exception as error:  # noqa: BLE001 - the exporter raises many kinds; the user needs one line
        raise MedlearnError(f"ONNX export failed: {str(error).splitlines()[0][:300]}") from None
    proto = program.model_proto
    _name_free_axes(proto, spec.dynamic_axes)
    onnx.helper.set_model_props(proto, dict(spec.metadata))
    onnx.save(proto, str(path))


def _name_free_axes(proto, names: dict[int, str]) -> None:
    """The exporter's symbols (``s77``) of the input's free axes renamed ``batch``, ``height``..., in the input and
    in every output dimension that is exactly one of them, so a reader of the file sees what may vary."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    renamed = {dims[axis].dim_param: name for axis, name in names.items() if axis < len(dims) and dims[axis].dim_param}
    for value in [*proto.graph.input, *proto.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]


def _check(spec: ExportSpec, model: nn.Module, runner, path: Path, fmt: str, seconds: float) -> ExportCheck:
    generator = torch.Generator().manual_seed(0)
    worst, scale = 0.0, 1.0
    for number, batch in enumerate(CHECK_BATCHES):
        shape = list(spec.example.shape)
        shape[0] = batch
        if number:  # the second check also changes every free spatial axis (half as long again)
            for axis in spec.dynamic_axes:
                shape[axis] += shape[axis] // 2 if axis else 0
        inputs = torch.randn(shape, generator=generator)
        with torch.inference_mode():
            expected = model(inputs).float().numpy()
        try:
            got = runner(inputs.numpy())
        except Exception as error:  # noqa: BLE001 - a runtime that cannot take the shape: the axis was frozen
            raise MedlearnError(
                f"the exported model cannot run an input of shape {tuple(shape)} ({str(error).splitlines()[0][:200]}): "
                "not written"
            ) from None
        if got.shape != expected.shape:
            raise MedlearnError(
                f"the exported model returns shape {got.shape} for a batch of {batch}, the trained one {expected.shape}"
            )
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    if spec.real_inputs is not None and len(spec.real_inputs):
        real = np.ascontiguousarray(spec.real_inputs, dtype=np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(real)).float().numpy()
        worst = max(worst, float(np.abs(runner(real) - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    tolerance = TOLERANCE * scale
    if not worst <= tolerance:
        raise MedlearnError(
            f"the exported model differs from the trained one by up to {worst:.3g} (tolerance {tolerance:.3g}): "
            "not written"
        )
    timing = torch.randn((TIMING_BATCH, *spec.example.shape[1:]), generator=generator)

    def eager(array: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(array)).numpy()

    eager_ms, exported_ms = (_ms_per_example(run, timing.numpy()) for run in (eager, runner))
    return ExportCheck(path, fmt, worst, tolerance, seconds, eager_ms, exported_ms)


def _ms_per_example(run, array: np.ndarray, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls after one warm-up call (fp32, this process's threads)."""
    run(array)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(array)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(array)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs a warning per torchvision operator it cannot find (torchvision is not installed
    here, and no medlearn model uses it) and a FutureWarning from torch's pytree: noise on a user's screen."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


class OnnxRunner:
    """An exported ONNX model under ONNX Runtime (CPU), with the description it was written with."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise MedlearnError("no such ONNX file", path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise MedlearnError(f"not a loadable ONNX model ({str(error).splitlines()[0][:200]})", path) from None
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @classmethod
    def for_task(cls, path: str | Path, task: str) -> OnnxRunner:
        """The exported model at ``path``, refused by name when ``medlearn export`` wrote it for another task."""
        runner = cls(path)
        if runner.metadata.get("task") != task:
            raise MedlearnError(f"not an exported {task} model (task {runner.metadata.get('task')!r})", path)
        return runner

    def run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(array, dtype=np.float32)})[0]

    def metadata_json(self, key: str):
        """A metadata value written as JSON, or an error naming the file when the export lacks it."""
        if key not in self.metadata:
            raise MedlearnError(
                f"the ONNX file has no medlearn metadata {key!r}: export it with 'medlearn export'", self.path
            )
        return json.loads(self.metadata[key])


class OnnxModule(nn.Module):
    """An :class:`OnnxRunner` behind ``nn.Module``'s call, for code that drives a torch network (sliding windows,
    test-time flips): tensors in, tensors out, float32 on the CPU, no gradient."""

    def __init__(self, runner: OnnxRunner) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner.run(x.detach().float().cpu().numpy()))
