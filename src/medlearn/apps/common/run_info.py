"""What every run report records besides its task: environment, training history, names derived from data."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import torch

from medlearn.engine.performance import bf16_supported


def environment_info() -> dict:
    """Versions and hardware, so a reader can tell how the figures were produced."""
    import monai

    import medlearn

    return {
        "medlearn": medlearn.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "bf16": bf16_supported(),
        "platform": platform.platform(),
    }


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return []
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return []
    return history if isinstance(history, list) else list(history.get("history", []))


def data_slug(data: str) -> str:
    name = Path(data).stem or "data"
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def announce(text: str, *, quiet: bool) -> None:
    """A line for the user before training starts (a choice the data made), also logged."""
    logging.getLogger("medlearn").info(text)
    if not quiet:
        from rich.console import Console

        Console().print(text, markup=False, highlight=False)
