"""Denoising autoencoders whose encoder *is* a classifier's feature trunk (pre-training, METHODS pretrain-ae).

Stacked denoising autoencoders (Vincent et al. 2010) pre-train an encoder without labels by
reconstructing clean images from corrupted ones; the encoder is then fine-tuned as a classifier.
Here the encoder is not a look-alike of the classifier but a *view* of its own modules:
:func:`feature_trunk` returns a module that holds references to the classifier's feature layers
(everything before global pooling and the final linear layer), under the classifier's own
parameter names. Training the autoencoder therefore trains those very modules, and
:func:`copy_trunk` / :func:`pretrained_classifier` move the weights into a fresh classifier 1:1.

Supported architectures (per-architecture trunk, see :func:`feature_trunk`):

- ``cls-multires`` (:class:`~medlearn.models.multires.MultiResolutionCNN`): every tract's
  downsampling + conv stages; the trunk yields one feature map per tract (coarse tracts give
  coarser maps);
- MONAI ResNets (``resnet10/18/34/50``): ``conv1, bn1, act, maxpool, layer1..layer4``;
- ``cls-shallow``: ``features`` (conv + pooling stages);
- ``densenet121``: ``features`` (dense blocks up to ``norm5``).

The decoder is light on purpose (most capacity should sit in the encoder, which is what is kept):
each feature map is projected by a 1x1 conv, resized to the finest map and summed, then
(upsample x2, 3x3 conv, BatchNorm, ReLU) stages bring it back to the input size, and a 3x3 conv
gives the image (linear output: the inputs are normalised intensities, not probabilities).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.multires import MultiResolutionCNN
from medlearn.models.registry import create_model
from medlearn.models.shallow import ShallowCNN

#: Models :func:`feature_trunk` knows, for error messages (ResNets are recognised by their type).
SUPPORTED = ("cls-multires", "resnet10", "resnet18", "resnet34", "resnet50", "cls-shallow", "densenet121")


class FeatureTrunk(nn.Module):
    """The feature part of a classifier, sharing its modules; ``forward`` returns a list of feature maps.

    Sub-modules are registered under the classifier's own attribute names, so ``state_dict()``
    keys are exactly the classifier's keys for those layers (``tracts.0.features.0.conv.weight``,
    ``layer1.0.conv1.weight``, ...), and ``trunk.load_state_dict`` on another classifier's trunk
    copies the weights 1:1.
    """

    def __init__(self, kind: str, parts: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.kind = kind
        for name, module in parts.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.kind == "multires":
            return [tract.features(tract.downsample(x)) for tract in self.tracts]
        if self.kind == "resnet":
            x = self.act(self.bn1(self.conv1(x)))
            if hasattr(self, "maxpool"):
                x = self.maxpool(x)
            return [self.layer4(self.layer3(self.layer2(self.layer1(x))))]
        return [self.features(x)]  # "features": cls-shallow, densenet121


def feature_trunk(model: nn.Module) -> FeatureTrunk:
    """The feature trunk of a classifier built by ``create_model`` (a view: its modules are shared).

    Raises :class:`MedlearnError` for architectures without a known trunk (e.g. ``cls-synergic``,
    whose two components and pair head have no single feature trunk).
    """
    from monai.networks.nets import DenseNet, ResNet

    if isinstance(model, MultiResolutionCNN):
        return FeatureTrunk("multires", {"tracts": model.tracts})
    if isinstance(model, ResNet):
        names = ["conv1", "bn1", "act"] + ([] if model.no_max_pool else ["maxpool"])
        names += ["layer1", "layer2", "layer3", "layer4"]
        return FeatureTrunk("resnet", {name: getattr(model, name) for name in names})
    if isinstance(model, (ShallowCNN, DenseNet)):
        return FeatureTrunk("features", {"features": model.features})
    raise MedlearnError(
        f"no feature trunk is known for {type(model).__name__}; denoising pre-training supports {', '.join(SUPPORTED)}"
    )


class Decoder(nn.Module):
    """Feature maps (from :class:`FeatureTrunk`) back to an image of ``output_size``."""

    def __init__(
        self,
        feature_channels: Sequence[int],
        feature_sizes: Sequence[Sequence[int]],
        output_size: Sequence[int],
        out_channels: int,
        width: int = 64,
        min_width: int = 16,
    ) -> None:
        super().__init__()
        spatial_dims = len(output_size)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.output_size = tuple(int(s) for s in output_size)
        self.start_size = tuple(int(s) for s in max(feature_sizes, key=lambda size: math.prod(size)))
        self.project = nn.ModuleList(conv(c, width, kernel_size=1) for c in feature_channels)
        ratio = max(o / s for o, s in zip(self.output_size, self.start_size, strict=True))
        self.num_up = max(0, math.ceil(math.log2(ratio) - 1e-9)) if ratio > 1 else 0
        stages: list[nn.Module] = []
        channels = width
        for _ in range(self.num_up):
            out = max(min_width, channels // 2)
            stages.append(
                nn.Sequential(conv(channels, out, 3, padding=1, bias=False), norm(out), nn.ReLU(inplace=True))
            )
            channels = out
        self.stages = nn.ModuleList(stages)
        self.head = conv(channels, out_channels, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = None
        for project, feature in zip(self.project, features, strict=True):
            y = project(F.relu(feature))
            if tuple(y.shape[2:]) != self.start_size:
                y = F.interpolate(y, size=self.start_size, mode=self.mode, align_corners=False)
            x = y if x is None else x + y
        for stage in self.stages:
            x = stage(F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False))
        x = self.head(x)
        if tuple(x.shape[2:]) != self.output_size:
            x = F.interpolate(x, size=self.output_size, mode=self.mode, align_corners=False)
        return x


class DenoisingAutoencoder(nn.Module):
    """``decoder(encoder(x))``: the encoder is a classifier's :class:`FeatureTrunk`."""

    def __init__(self, encoder: FeatureTrunk, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def autoencoder_parts(
    classifier: nn.Module, in_channels: int, image_size: int | Sequence[int], *, width: int = 64
) -> tuple[FeatureTrunk, Decoder]:
    """``(encoder, decoder)`` for ``classifier``: its trunk (shared modules) and a fresh decoder.

    ``image_size`` is the side of the (square) inputs, or their full spatial shape; the decoder is
    sized by one probe forward pass of a zero image through the trunk (in eval mode, no grad).
    """
    encoder = feature_trunk(classifier)
    size = (int(image_size),) * 2 if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            probe = encoder(torch.zeros(1, in_channels, *size))
    finally:
        encoder.train(was_training)
    decoder = Decoder([f.shape[1] for f in probe], [tuple(f.shape[2:]) for f in probe], size, in_channels, width)
    return encoder, decoder


def build_autoencoder(
    classifier: nn.Module, in_channels: int, image_size: int | Sequence[int], *, width: int = 64
) -> DenoisingAutoencoder:
    """A :class:`DenoisingAutoencoder` whose encoder is ``classifier``'s trunk (see :func:`autoencoder_parts`)."""
    return DenoisingAutoencoder(*autoencoder_parts(classifier, in_channels, image_size, width=width))


def trunk_state(source: nn.Module) -> dict[str, torch.Tensor]:
    """Trunk weights and buffers (BatchNorm statistics) of a classifier, a trunk or an autoencoder, detached copies."""
    if isinstance(source, DenoisingAutoencoder):
        source = source.encoder
    if not isinstance(source, FeatureTrunk):
        source = feature_trunk(source)
    return {name: value.detach().clone() for name, value in source.state_dict().items()}


def copy_trunk(source: nn.Module | Mapping[str, torch.Tensor], target: nn.Module) -> nn.Module:
    """Load trunk weights (from a model, trunk, autoencoder or a :func:`trunk_state` dict) into ``target``.

    Strict: every trunk tensor must be present with the same shape, so a mismatched architecture or
    width fails loudly instead of half-loading. Returns ``target``.
    """
    state = dict(source) if isinstance(source, Mapping) else trunk_state(source)
    trunk = feature_trunk(target)
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise MedlearnError(f"the pre-trained encoder does not fit this classifier ({error})") from None
    return target


def pretrained_classifier(
    name: str,
    encoder: nn.Module | Mapping[str, torch.Tensor],
    *,
    in_channels: int = 1,
    num_classes: int = 2,
    **model_kwargs,
) -> nn.Module:
    """A fresh ``create_model(name, ...)`` classifier whose trunk starts from ``encoder``'s weights.

    The classifier's head (final linear layers, auxiliary heads) keeps its fresh initialisation.
    """

    model = create_model(name, in_channels=in_channels, num_classes=num_classes, **model_kwargs)
    return copy_trunk(encoder, model)


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A short SHA-256 of tensors (names, shapes, float32 values): records which weights initialised a run."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu()
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
