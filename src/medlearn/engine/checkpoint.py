"""Checkpoints that are safe to load and never half-written.

A checkpoint is a directory holding ``model.safetensors`` (weights: no pickle, so loading a file
from someone else cannot run code) and ``state.pt`` (optimizer, scheduler, RNG, epoch, history;
read back with ``torch.load(weights_only=True)``). Both files are written into a temporary
sibling directory which then replaces the old checkpoint, so a crash mid-write leaves the previous
checkpoint — never a weights file from one epoch beside a state file from another. The epoch is
also stored in both files and checked on load.

Loading weights into a model of another architecture, or a truncated file, raises a
:class:`~medlearn.errors.MedlearnError` naming the file, not a torch traceback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_model
from torch import nn

from medlearn.errors import MedlearnError

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
CHECKPOINTS_DIR = "checkpoints"


def checkpoint_dir(run_dir: str | Path, name: str = "last") -> Path:
    """``<run_dir>/checkpoints/<name>`` ("last" or "best")."""
    return Path(run_dir) / CHECKPOINTS_DIR / name


def checkpoint_weights_file(run_dir: str | Path, name: str = "best") -> Path:
    """The weights file of checkpoint ``name`` of a run directory (what predict/evaluate load)."""
    return checkpoint_dir(run_dir, name) / WEIGHTS_FILE


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    state: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Atomically write checkpoint ``directory``: weights of ``model`` and ``state`` (with ``"epoch"``)."""
    model = unwrap_model(model)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        header = {"format": "pt", "model_class": type(model).__name__, "epoch": str(state["epoch"])}
        header.update({str(k): str(v) for k, v in (metadata or {}).items()})
        save_model(model, str(tmp / WEIGHTS_FILE), metadata=header)
        torch.save(dict(state), tmp / STATE_FILE)
        _fsync_files(tmp)
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """The ``state.pt`` of a checkpoint (tensors and plain values only)."""
    directory = Path(directory)
    _recover(directory)
    path = directory / STATE_FILE
    if not path.is_file():
        raise MedlearnError("no training state here (not a medlearn checkpoint?)", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, unpickling refusal, ...
        raise MedlearnError(f"checkpoint state is corrupt or truncated ({_first_line(error)})", path) from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise MedlearnError("checkpoint state is not a medlearn training state", path)
    return state


def load_checkpoint(directory: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` and return its training state (epochs must agree)."""
    directory = Path(directory)
    state = load_training_state(directory)
    weights = directory / WEIGHTS_FILE
    saved_epoch = read_metadata(weights).get("epoch")
    if saved_epoch is not None and saved_epoch != str(state["epoch"]):
        raise MedlearnError(
            f"weights are from epoch {saved_epoch} but the training state is from epoch {state['epoch']}",
            directory,
        )
    load_weights(model, weights)
    return state


def read_metadata(path: str | Path) -> dict[str, str]:
    """The text metadata stored in a safetensors header (epoch, model class, ...)."""
    path = Path(path)
    if not path.is_file():
        raise MedlearnError("weights file not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as error:
        raise MedlearnError(
            f"not a readable safetensors file; corrupt or truncated ({_first_line(error)})", path
        ) from None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights (a file, or a checkpoint directory) into ``model``; returns ``model``.

    The architecture is checked before anything is copied, so a mismatch leaves ``model`` untouched.
    """
    model = unwrap_model(model)
    path = Path(path)
    if path.is_dir():
        _recover(path)
        path = path / WEIGHTS_FILE
    saved_class = read_metadata(path).get("model_class")
    try:
        tensors = load_file(str(path))
    except Exception as error:
        raise MedlearnError(
            f"not a readable safetensors file; corrupt or truncated ({_first_line(error)})", path
        ) from None
    problems = _architecture_problems(model, tensors)
    if problems:
        built = type(model).__name__
        origin = f" (saved from {saved_class}, loading into {built})" if saved_class and saved_class != built else ""
        raise MedlearnError(f"checkpoint does not match the model architecture{origin}: {problems}", path)
    model.load_state_dict(tensors, strict=False)
    return model


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module ``torch.compile`` wrapped (its state-dict keys are the ones to save and load)."""
    return getattr(model, "_orig_mod", model)


def _architecture_problems(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> str:
    """A one-line summary of missing / unexpected / wrongly shaped tensors ("" when they match)."""
    expected = model.state_dict()
    aliases = _shared_names(expected)
    missing = [k for k in expected if k not in tensors and not any(a in tensors for a in aliases.get(k, ()))]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [
        f"{k} {tuple(tensors[k].shape)} vs {tuple(expected[k].shape)}"
        for k in tensors
        if k in expected and tensors[k].shape != expected[k].shape
    ]
    parts = []
    for label, names in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch (file vs model)", shapes),
    ):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{len(names)} {label}: {', '.join(names[:3])}{more}")
    return "; ".join(parts)


def _shared_names(state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """For tied tensors (one storage under several names, which safetensors saves once), the other names."""
    groups: dict[tuple, list[str]] = {}
    for name, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        groups.setdefault(key, []).append(name)
    return {name: [n for n in names if n != name] for names in groups.values() if len(names) > 1 for name in names}


def _replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` into ``target``'s place; the old one survives as a backup until the swap is done.

    Directory renames cannot overwrite a non-empty directory, so the old checkpoint is first
    renamed aside; if the process dies between the two renames, :func:`_recover` restores it.
    """
    backup = _backup_of(target)
    if backup.exists():
        shutil.rmtree(backup)
    if target.exists():
        os.replace(target, backup)
    os.replace(new, target)
    _fsync_directory(target.parent)  # the renames themselves survive a power cut only once the folder is flushed
    shutil.rmtree(backup, ignore_errors=True)


def recover_checkpoint(target: str | Path) -> None:
    """Bring back the previous checkpoint if a swap was interrupted between its two renames (a no-op otherwise);
    called before anything asks whether a checkpoint exists."""
    _recover(Path(target))


def _recover(target: Path) -> None:
    backup = _backup_of(target)
    if not target.exists() and backup.is_dir():
        os.replace(backup, target)


def _fsync_directory(directory: Path) -> None:
    """Flush a folder's entries (renames) to disk; not possible on every platform, where it is skipped."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _backup_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def _fsync_files(directory: Path) -> None:
    """Flush file contents to disk before the rename publishes them (a rename can outlive unflushed data)."""
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
