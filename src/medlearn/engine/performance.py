"""CPU speed knobs: bf16 autocast, channels-last memory layout, torch.compile, thread count.

On a CPU with native bf16 (AVX512-BF16 / AMX) convolutions run several times faster under
bf16 autocast, and oneDNN prefers NHWC ("channels last") tensors; elsewhere both can be slower,
so ``precision="auto"`` only picks bf16 when the hardware has it. Training and inference share
these helpers so a model is evaluated with the numerics it was trained with.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T", nn.Module, torch.Tensor)


@functools.cache
def bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX512 capability and oneDNN bf16 kernels)."""
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
        return "AVX512" in capability and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``"bf16"`` or ``"fp32"``: what ``"auto"`` means on this machine and device."""
    if precision not in ("bf16", "fp32", "auto"):
        raise ValueError(f"precision must be bf16, fp32 or auto, not {precision!r}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_supported() else "fp32"


def autocast_context(precision: str = "auto", device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """``torch.autocast`` in bf16 when ``precision`` resolves to bf16, else a no-op context."""
    device_type = torch.device(device).type
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_format(tensor: torch.Tensor) -> torch.memory_format | None:
    if tensor.dim() == 4:
        return torch.channels_last
    if tensor.dim() == 5:
        return torch.channels_last_3d
    return None


def to_channels_last(obj: T) -> T:
    """NHWC / NDHWC layout for a module's 4D/5D parameters and buffers, or for one 4D/5D float tensor.

    Values are unchanged; other tensors (labels, 2D weights) are returned as they are.
    """
    if isinstance(obj, torch.Tensor):
        layout = _memory_format(obj)
        if layout is None or not obj.is_floating_point():
            return obj
        return obj.contiguous(memory_format=layout)
    with torch.no_grad():
        for tensor in [*obj.parameters(), *obj.buffers()]:
            layout = _memory_format(tensor)
            if layout is not None:
                tensor.data = tensor.data.contiguous(memory_format=layout)
    return obj


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when enabled (the first batches are slow while it compiles), else ``model``.

    The returned wrapper shares parameters with ``model``; save and load the original ``model``.
    """
    return torch.compile(model) if enabled else model


def set_threads(n: int | None) -> int:
    """Set torch's intra-op thread count (None leaves it); returns the previous count for restoring."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    return previous
