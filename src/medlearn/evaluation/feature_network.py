"""Where the features of FID, KID and precision/recall come from, without downloading any weights.

FID is usually computed on ImageNet Inception-v3 features, whose weights must be downloaded and
which know nothing about medical images. Here the features come from one of two sources:

- :func:`medlearn.apps.generation.features.classifier_features`: the penultimate layer (the input of the final
  ``nn.Linear``) of a classifier trained with ``medlearn classify train`` on the same kind of
  images. Its features encode what distinguishes the images clinically (e.g. tumour / no tumour),
  so this is the recommended source.
- :func:`random_projection_network`: a fixed, seeded, randomly initialised small conv net. Random
  conv features capture intensity, texture and coarse layout statistics and need nothing but the
  seed, but they are weaker (less sensitive to semantic differences) than a trained network's:
  use them when no classifier run is available, and compare only numbers made with the same seed.

Metric values depend on the extractor: report :attr:`FeatureExtractor.description` beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlearn.data.preprocess import ClassificationPreprocessing, _square_resize
from medlearn.errors import MedlearnError
from medlearn.io.color import LUMA_WEIGHTS
from medlearn.io.geometry import image_from_affine

ImageBatch = np.ndarray


class FeatureExtractor:
    """Images ``(N, C, H, W)`` (floats in [0, 1]) -> feature vectors ``(N, D)`` (float64), deterministic.

    ``prepare`` maps a batch of images to the network's input; the features are the input of
    ``feature_layer`` (captured by a forward pre-hook) or, without one, the network's output.
    Always runs in float32 in eval mode, so the same images give the same features.
    """

    def __init__(
        self,
        network: nn.Module,
        prepare: Callable[[ImageBatch], ImageBatch],
        *,
        name: str,
        description: str,
        feature_layer: nn.Module | None = None,
        batch_size: int = 64,
    ) -> None:
        self.network = network.eval()
        self.prepare = prepare
        self.name = name
        self.description = description
        self.feature_layer = feature_layer
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}: {self.description})"

    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise MedlearnError(f"feature extraction needs (N, C, H, W) images, got shape {images.shape}")
        chunks = [
            self._batch(images[start : start + self.batch_size]) for start in range(0, len(images), self.batch_size)
        ]
        if not chunks:
            raise MedlearnError("feature extraction got an empty set of images")
        return np.concatenate(chunks).astype(np.float64)

    @torch.inference_mode()
    def _batch(self, images: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(self.prepare(images), dtype=np.float32))
        self.network.eval()
        if self.feature_layer is None:
            return self.network(inputs).float().flatten(1).numpy()
        captured: list[torch.Tensor] = []
        handle = self.feature_layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.network(inputs)
        finally:
            handle.remove()
        if not captured:
            raise MedlearnError("the feature layer was not called by the network's forward pass")
        return captured[-1].float().flatten(1).numpy()

    # ------------------------------------------------------------------------------ constructors

    @classmethod
    def from_classifier(
        cls,
        model: nn.Module,
        preprocessing: ClassificationPreprocessing,
        *,
        normalise: bool = True,
        name: str | None = None,
        description: str | None = None,
        batch_size: int = 64,
    ) -> FeatureExtractor:
        """Penultimate features of a medlearn classifier (the input of its last-called ``nn.Linear``).

        ``preprocessing`` is the classifier's (image size, channels, modality); images are mapped to
        its input as :func:`classifier_input` says.
        """
        model = model.eval()
        size = int(preprocessing.image_size)
        layer = final_linear(model, torch.zeros(1, preprocessing.channels, size, size))
        model_name = type(model).__name__
        return cls(
            model,
            lambda images: classifier_input(images, preprocessing, normalise=normalise),
            name=name or f"classifier:{model_name}",
            description=description or f"penultimate layer of a {model_name} classifier ({size} px)",
            feature_layer=layer,
            batch_size=batch_size,
        )


def final_linear(model: nn.Module, example: torch.Tensor) -> nn.Linear:
    """The last ``nn.Linear`` that ``model``'s forward pass calls (found by running ``example``).

    Not simply the last one registered: a model may hold heads that forward never calls (the
    auxiliary per-tract classifiers of ``cls-multires`` come after its fused classifier).
    """
    called: list[nn.Module] = []
    handles = [
        module.register_forward_pre_hook(lambda m, _args: called.append(m))
        for module in model.modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        with torch.inference_mode():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    if not called:
        raise MedlearnError(f"{type(model).__name__} calls no nn.Linear layer: no penultimate features to take")
    return called[-1]


def classifier_input(
    images: np.ndarray, preprocessing: ClassificationPreprocessing, *, normalise: bool = True
) -> np.ndarray:
    """``(N, C, H, W)`` images in [0, 1] -> the ``(N, channels, size, size)`` input the classifier was trained on.

    With ``normalise`` each image goes through the run's own :class:`ClassificationPreprocessing`
    (grey conversion or channel repetition, intensity normalisation by modality, square padding,
    anti-aliased resize), as if it had been read from a PNG of that modality. MR's percentile
    clip + z-score and the display scaling of other modalities do not depend on the input's range,
    so [0, 1] images get exactly what training images got. CT is the exception: a classifier sees
    CT windowed to [0, 1], so [0, 1] CT images are taken as already windowed and only resized.
    Without ``normalise`` the images are taken as already normalised (only channels and size change).
    """

    images = np.asarray(images, dtype=np.float32)
    modality = (preprocessing.modality or "OT").upper()
    out = []
    for image in images:
        if normalise and modality != "CT":
            medical = image_from_affine(np.ascontiguousarray(image), np.eye(4), modality=modality)
            out.append(preprocessing(medical))
        else:
            out.append(_square_resize(map_channels(image, preprocessing.channels), preprocessing.image_size))
    return np.stack(out).astype(np.float32, copy=False)


def map_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """One ``(C, H, W)`` image with ``channels`` channels: grey repeated, or RGB to BT.601 luma."""

    have = image.shape[0]
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=0)
    if have == 3 and channels == 1:
        return np.tensordot(LUMA_WEIGHTS.astype(np.float32), image, axes=1)[None].astype(np.float32)
    raise MedlearnError(f"cannot map {have}-channel images to the {channels} channels of the feature network")


# ------------------------------------------------------------------------------------ random net


class RandomConvNet(nn.Module):
    """Stride-2 3x3 conv + leaky ReLU stages, then the last stage average-pooled onto a 2x2 grid.

    Weights are He-normal from a private seeded generator (no global RNG touched), biases zero; the
    2x2 grid keeps coarse layout (where things are), the channels texture and intensity statistics.
    """

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 64), seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        previous = channels
        for width in widths:
            conv = nn.Conv2d(previous, width, kernel_size=3, stride=2, padding=1)
            with torch.no_grad():
                fan_in = previous * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))
                conv.bias.zero_()
            layers += [conv, nn.LeakyReLU(0.2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.out_features = previous * 4
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x * 2.0 - 1.0)).flatten(1)  # [0, 1] -> [-1, 1]: centred input


def random_projection_network(seed: int = 0, channels: int = 1, *, image_size: int = 128) -> FeatureExtractor:
    """A fixed randomly initialised small conv net (:class:`RandomConvNet`, 256 features): no weights needed.

    Weaker than a trained classifier's features (not trained to tell anything apart), but
    reproducible from ``seed`` alone. Images are mapped to ``channels`` and resized to
    ``image_size`` (bilinear, anti-aliased) so sets of different sizes get comparable features.
    """
    network = RandomConvNet(channels, seed=seed)

    def prepare(images: np.ndarray) -> np.ndarray:
        mapped = np.stack([map_channels(image, channels) for image in np.asarray(images, dtype=np.float32)])
        tensor = torch.from_numpy(np.ascontiguousarray(mapped))
        if tensor.shape[-2:] != (image_size, image_size):
            tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True)
        return tensor.numpy()

    return FeatureExtractor(
        network,
        prepare,
        name=f"random-conv:seed{seed}",
        description=(
            f"fixed random conv net (seed {seed}, {channels} channel(s), {image_size} px, "
            f"{network.out_features}-d; untrained, weaker than a classifier's features)"
        ),
    )


__all__ = [
    "FeatureExtractor",
    "RandomConvNet",
    "classifier_input",
    "final_linear",
    "map_channels",
    "random_projection_network",
]
