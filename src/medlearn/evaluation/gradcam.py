"""Grad-CAM heat maps (where did the classifier look?) via MONAI, plus an overlay for reports.

MONAI's :class:`monai.visualize.GradCAM` registers hooks on the module it is given and never
removes them, and its min-max normaliser maps the *maximum* to 0. So the maps here are computed on
a throw-away float32 copy of the model in eval mode (the caller's model is untouched), one class
index per call (MONAI scores ``logits[:, idx]`` and would mix classes across a batch), and are
rescaled so that 1 means "most important" in each image.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from matplotlib import colormaps
from monai.visualize import GradCAM
from torch import nn

from medlearn.errors import MedlearnError


def find_target_layer(model: nn.Module) -> str:
    """``model.gradcam_layer`` when the model names one, else the last convolution module."""
    named = getattr(model, "gradcam_layer", None)
    if isinstance(named, nn.Module):
        for name, module in model.named_modules():
            if module is named:
                return name
    if isinstance(named, str) and named:
        return named
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            last = name
    if last is None:
        raise MedlearnError(f"{type(model).__name__} has no convolution layer to compute Grad-CAM on")
    return last


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1] (1 = most important); a constant map becomes all zeros."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    scaled = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, 1), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def gradcam_maps(
    model: nn.Module,
    images: torch.Tensor,
    class_index: int | torch.Tensor | None = None,
    layer: str | None = None,
) -> np.ndarray:
    """``(B, H, W)`` Grad-CAM maps in [0, 1] for ``images`` of shape ``(B, C, H, W)``.

    ``class_index``: one class for all images, one per image, or ``None`` for each image's
    predicted class. ``layer``: a module name from ``model.named_modules()``; by default
    :func:`find_target_layer`.
    """
    if images.ndim != 4:
        raise MedlearnError(f"Grad-CAM expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    target = layer or find_target_layer(model)
    names = {name for name, _ in model.named_modules()}
    if target not in names:
        raise MedlearnError(f"Grad-CAM layer {target!r} is not a module of {type(model).__name__}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    work = copy.deepcopy(model).float().eval()
    for param in work.parameters():
        param.requires_grad_(True)  # a frozen backbone would otherwise give no gradients
    x = images.detach().to(device=device, dtype=torch.float32)
    batch = x.shape[0]

    if class_index is None:
        with torch.no_grad():
            classes = work(x).argmax(dim=1)
    elif isinstance(class_index, torch.Tensor) and class_index.ndim > 0:
        classes = class_index.to(device).long().reshape(-1)
        if len(classes) != batch:
            raise MedlearnError(f"{len(classes)} class indices for {batch} images")
    else:
        classes = torch.full((batch,), int(class_index), device=device, dtype=torch.long)

    cam = GradCAM(nn_module=work, target_layers=target, postprocessing=lambda m: m)
    out = torch.zeros((batch, 1, *x.shape[2:]), dtype=torch.float32, device=device)
    with torch.enable_grad():
        for cls in classes.unique().tolist():
            chosen = (classes == cls).nonzero(as_tuple=True)[0]
            inputs = x[chosen].clone().requires_grad_(True)
            out[chosen] = cam(inputs, class_idx=int(cls)).detach().float()
    return _normalise(out[:, 0]).cpu().numpy()


def overlay(image_2d: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """RGB uint8 picture: the grey image (min-max scaled) blended with the coloured map.

    The map's colour is weighted by the map itself, so unimportant regions show the plain image.
    """
    img = np.asarray(image_2d, dtype=np.float64)
    heat = np.asarray(cam, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):  # channel-first grey/RGB -> grey
        img = img.mean(axis=0)
    if img.shape != heat.shape:
        raise MedlearnError(f"image {img.shape} and Grad-CAM map {heat.shape} differ in shape")
    span = img.max() - img.min()
    grey = (img - img.min()) / span if span > 0 else np.zeros_like(img)
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    colour = colormaps[cmap](heat)[..., :3]
    weight = alpha * heat[..., None] ** 0.5  # fade the colour out where the map is low
    rgb = (1 - weight) * grey[..., None] + weight * colour
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
