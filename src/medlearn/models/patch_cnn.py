"""Patch-classification segmentation (Ciresan et al. 2012), evaluated densely in one convolutional pass.

Ciresan et al. (2012, "Deep neural networks segment neuronal membranes in electron microscopy images")
label each pixel by classifying the P x P patch centred on it with a small CNN: conv - max-pool - conv -
max-pool - conv, then fully-connected layers. Run naively, that costs one network evaluation per pixel.

Giusti et al. (2013, "Fast image scanning with deep max-pooling CNNs", made for Ciresan's network) showed
that the same classifier can be evaluated for every pixel of an image EXACTLY, in one pass:

* all convolutions are unpadded ("valid"), so a value only ever sees pixels inside its patch;
* each max-pooling keeps its window but uses stride 1 instead of its window size, and every later layer
  (convolutions and poolings) is dilated by the product of the earlier pooling factors ("filter
  rarefaction"), so each output position sees exactly the grid the strided network would have seen;
* the fully-connected layers are 1 x 1 convolutions: the last convolution already reduces a patch to a
  single position, so a fully-connected layer on it is a 1 x 1 convolution over the dense map.

A P x P input then gives a 1 x 1 output and an H x W input an (H - P + 1) x (W - P + 1) map whose value at
``i`` is the patch classifier's logits for the patch starting at ``i``. ``forward`` pads the input by the
receptive-field radius ``(P - 1) / 2`` (replicate padding by default, or reflect) so the logits map has the
input's size and is centred on each pixel. ``receptive_field`` is the patch side P (odd);
``classify_patches(patches)`` is the plain patch classifier (stride-2 pooling, no dilation, no padding):
(B, C, P, P[, P]) patches -> (B, num_classes) logits of their centres.

Normalisation is BatchNorm: in eval mode it is a fixed per-channel affine map, so the dense pass and the
patch classifier agree exactly; InstanceNorm would not (its statistics depend on the input's extent).

The building blocks here (:class:`PatchStream`, :class:`PatchClassifierNet`) also make Lai's (2015) 2D,
tri-planar and 3D voxel classifiers in :mod:`medlearn.models.voxel_classifiers`: a stream may restrict its
kernels to a subset of the spatial axes (a plane of a volume).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims

PADDING_MODES = ("replicate", "reflect")

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_CONV_F = {2: F.conv2d, 3: F.conv3d}
_POOL_F = {2: F.max_pool2d, 3: F.max_pool3d}


def _along(axes: Sequence[int], spatial_dims: int, value: int) -> tuple[int, ...]:
    """A per-axis size: ``value`` along ``axes``, 1 along the other spatial axes."""
    return tuple(value if axis in axes else 1 for axis in range(spatial_dims))


class PatchStream(nn.Module):
    """Conv stages (conv, BatchNorm, ReLU) with a max-pool between consecutive stages, for dense evaluation.

    Kernels extend along ``axes`` only (size 1 along the other spatial axes), so with ``axes=(0, 1)`` in a
    volume the stream sees a 2D patch in the plane of the first two axes. The modules are built for the
    dense pass: stride-1 pooling and dilation by the product of the earlier pooling factors (Giusti et al.
    2013). :meth:`patch` runs the same weights as the plain patch classifier (stride-``pool`` pooling, no
    dilation); both give the same numbers (in eval mode).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_sizes: Sequence[int],
        spatial_dims: int,
        axes: Sequence[int] | None = None,
        pool: int = 2,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if len(channels) != len(kernel_sizes) or not channels:
            raise MedlearnError(f"need one kernel size per conv stage, got channels={channels}, kernels={kernel_sizes}")
        if min(channels) < 1 or min(kernel_sizes) < 1 or pool < 1:
            raise MedlearnError(f"channels, kernel sizes and pool must be >= 1, got {channels}, {kernel_sizes}, {pool}")
        self.spatial_dims = spatial_dims
        self.axes = tuple(range(spatial_dims)) if axes is None else tuple(sorted(set(axes)))
        if not self.axes or not set(self.axes) <= set(range(spatial_dims)):
            raise MedlearnError(f"stream axes {axes} are not spatial axes of a {spatial_dims}D input")
        self.pool = pool
        self.stages = nn.ModuleList()
        self.pools = nn.ModuleList()
        dilation, extent, features = 1, 1, in_channels
        for index, (width, size) in enumerate(zip(channels, kernel_sizes, strict=True)):
            conv = _CONV[spatial_dims](
                features,
                width,
                _along(self.axes, spatial_dims, size),
                dilation=_along(self.axes, spatial_dims, dilation),
                bias=False,
            )
            self.stages.append(nn.Sequential(conv, _NORM[spatial_dims](width), nn.ReLU()))
            extent += (size - 1) * dilation
            if index < len(channels) - 1:
                window = _along(self.axes, spatial_dims, pool)
                self.pools.append(
                    _POOL[spatial_dims](window, stride=1, dilation=_along(self.axes, spatial_dims, dilation))
                )
                extent += (pool - 1) * dilation
                dilation *= pool
            features = width
        self.out_channels = features
        #: The patch side P along ``axes`` (1 along the others).
        self.receptive_field = extent
        self.patch_shape = _along(self.axes, spatial_dims, extent)

    def dense(self, x: torch.Tensor, padding_mode: str = "replicate") -> torch.Tensor:
        """Features of the patch centred on every position: pad by the radius along ``axes``, run densely."""
        radius = self.receptive_field // 2
        pad: list[int] = []
        for axis in reversed(range(self.spatial_dims)):  # F.pad lists the last axis first
            pad += [radius, radius] if axis in self.axes else [0, 0]
        x = F.pad(x, pad, mode=padding_mode)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index < len(self.pools):
                x = self.pools[index](x)
        return x

    def patch(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, C, *patch_shape) -> (B, out_channels, 1, ...): the plain strided patch network, no padding.

        A larger odd-centred input (e.g. the P^3 cube for a planar stream) is cropped to the centre first.
        """
        crop = []
        for size, want in zip(patches.shape[2:], self.patch_shape, strict=True):
            if size < want or (size - want) % 2:
                raise MedlearnError(f"patch size {tuple(patches.shape[2:])} does not centre {self.patch_shape}")
            start = (size - want) // 2
            crop.append(slice(start, start + want))
        x = patches[(slice(None), slice(None), *crop)]
        window = _along(self.axes, self.spatial_dims, self.pool)
        for index, stage in enumerate(self.stages):
            conv, norm, act = stage
            x = act(norm(_CONV_F[self.spatial_dims](x, conv.weight, conv.bias)))
            if index < len(self.pools):
                x = _POOL_F[self.spatial_dims](x, window, stride=window)
        return x


class PatchClassifierNet(nn.Module):
    """One or more :class:`PatchStream`, features concatenated, then "fully-connected" 1 x 1 convolutions.

    ``forward``: (B, C, *spatial) -> (B, num_classes, *spatial) logits, each the patch classifier's output
    for the patch centred on that position (input padded by the radius). ``classify_patches``:
    (B, C, P, P[, P]) -> (B, num_classes), the patch classifier itself.
    """

    def __init__(
        self,
        streams: Sequence[PatchStream],
        num_classes: int = 2,
        hidden: int = 64,
        dropout: float = 0.0,
        padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise MedlearnError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if num_classes < 1 or hidden < 1:
            raise MedlearnError(f"num_classes and hidden must be >= 1, got {num_classes}, {hidden}")
        for stream in streams:
            if stream.receptive_field % 2 == 0:
                raise MedlearnError(
                    f"the receptive field must be odd to have a centre pixel, got {stream.receptive_field}; "
                    "change one kernel size by 1"
                )
        self.streams = nn.ModuleList(streams)
        self.spatial_dims = spatial_dims = streams[0].spatial_dims
        self.padding_mode = padding_mode
        features = sum(stream.out_channels for stream in streams)
        self.head = nn.Sequential(
            _CONV[spatial_dims](features, hidden, 1, bias=False),
            _NORM[spatial_dims](hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            _CONV[spatial_dims](hidden, num_classes, 1),
        )
        #: The patch side P (odd); ``patch_shape`` is the patch's extent per axis (1 off a 2D stream's plane).
        self.receptive_field = max(stream.receptive_field for stream in streams)
        self.patch_shape = tuple(max(s.patch_shape[axis] for s in streams) for axis in range(spatial_dims))
        # One stream: its last convolution; several: the 1 x 1 convolution fusing them (sees every stream).
        last = len(streams[0].stages) - 1
        self.gradcam_layer = f"streams.0.stages.{last}.0" if len(streams) == 1 else "head.0"

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise MedlearnError(
                f"expected a (B, C, {self.spatial_dims} spatial axes) tensor, got shape {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if self.padding_mode == "reflect" and min(x.shape[2:]) <= self.receptive_field // 2:
            raise MedlearnError(
                f"reflect padding by {self.receptive_field // 2} needs larger spatial sizes, got {tuple(x.shape)}"
            )
        return self.head(torch.cat([stream.dense(x, self.padding_mode) for stream in self.streams], 1))

    def classify_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, C, P, P[, P]) patches -> (B, num_classes) logits of their centre pixels (no padding)."""
        self._check(patches)
        return self.head(torch.cat([stream.patch(patches) for stream in self.streams], 1)).flatten(1)


@register_model(
    "patch-cnn",
    task="segmentation",
    summary="Pixel classifier (Ciresan et al. 2012): conv-pool-conv-pool-conv + 2 FC on a PxP patch, dense pass",
)
def patch_cnn(
    in_channels: int = 1,
    num_classes: int = 2,
    spatial_dims: int = 2,
    channels: Sequence[int] = (16, 32, 48),
    kernel_sizes: Sequence[int] | None = None,
    hidden: int = 64,
    dropout: float = 0.0,
    padding_mode: str = "replicate",
) -> nn.Module:
    """Kernels default to (4, 5, 5) in 2D (P = 31) and (4, 3, 3) in 3D (P = 19); 2x max-pool between convs."""
    check_spatial_dims(spatial_dims)
    if kernel_sizes is None:
        kernel_sizes = (4, 5, 5) if spatial_dims == 2 else (4, 3, 3)
    stream = PatchStream(in_channels, channels, kernel_sizes, spatial_dims)
    return PatchClassifierNet([stream], num_classes, hidden=hidden, dropout=dropout, padding_mode=padding_mode)
