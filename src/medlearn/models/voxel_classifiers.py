"""Lai's (2015) three voxel classifiers for volumes: 2D patch, tri-planar patches, 3D patch.

Lai (2015, "Deep learning for medical image segmentation") compares three ways to label a voxel of a
volume from its neighbourhood with a CNN:

* ``lai-2d``: the P x P patch in one plane through the voxel (here the plane of the first two array axes),
  built as 3D convolutions with (k, k, 1) kernels so it runs on volumes; with ``spatial_dims=2`` it is a
  plain 2D patch CNN;
* ``lai-triplanar``: three 2D streams, one per orthogonal plane through the voxel (kernels (k, k, 1),
  (k, 1, k) and (1, k, k), each stream with its own weights), their features concatenated and fused by
  1 x 1 x 1 "fully-connected" convolutions; it sees 3 P^2 - 3 P + 1 voxels, not P^3;
* ``lai-3d``: the full P x P x P cube, k x k x k kernels.

All three are built by the same helper from :class:`medlearn.models.patch_cnn.PatchStream` with the same
channel widths, kernel sizes and head, so they differ only in the shape of their kernels (which axes the
patch extends over). As in :mod:`medlearn.models.patch_cnn`, each is evaluated densely and exactly in one
pass (Giusti et al. 2013): unpadded convolutions, stride-1 max-pooling with later layers dilated by the
pooling factor (filter rarefaction), fully-connected layers as 1 x 1 x 1 convolutions, and ``forward``
pads the input by the receptive-field radius so the logits have the input's size. ``receptive_field`` is
the patch side P; ``classify_patches`` takes (B, C, P, P, P) cubes (or (B, C, P, P, 1) slabs for
``lai-2d``) and returns their centre voxels' logits; the planar streams only use the planes through the
centre.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.patch_cnn import PatchClassifierNet, PatchStream
from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims

#: The spatial axes each kind's streams extend over, in a volume.
_PLANES = {
    "2d": [(0, 1)],
    "triplanar": [(0, 1), (0, 2), (1, 2)],
    "3d": [(0, 1, 2)],
}


def lai_voxel_classifier(
    kind: str,
    in_channels: int = 1,
    num_classes: int = 2,
    spatial_dims: int = 3,
    channels: Sequence[int] = (16, 32, 48),
    kernel_sizes: Sequence[int] = (4, 3, 3),
    hidden: int = 64,
    dropout: float = 0.0,
    padding_mode: str = "replicate",
) -> PatchClassifierNet:
    """One stream per plane of ``kind`` ("2d", "triplanar", "3d"); default kernels give P = 19."""
    check_spatial_dims(spatial_dims)
    if kind not in _PLANES:
        raise MedlearnError(f"unknown voxel classifier kind {kind!r}; known: {', '.join(_PLANES)}")
    if kind != "2d" and spatial_dims != 3:
        raise MedlearnError(f"lai-{kind} classifies voxels of volumes and needs spatial_dims=3, got {spatial_dims}")
    planes = _PLANES[kind] if spatial_dims == 3 else [(0, 1)]
    streams = [PatchStream(in_channels, channels, kernel_sizes, spatial_dims, axes=axes) for axes in planes]
    return PatchClassifierNet(streams, num_classes, hidden=hidden, dropout=dropout, padding_mode=padding_mode)


@register_model(
    "lai-2d",
    task="segmentation",
    summary="Voxel classifier on the PxP patch in one plane (Lai 2015), (k,k,1) kernels; dense pass",
)
def lai_2d(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 3, **kwargs) -> nn.Module:
    """Kwargs: ``channels``, ``kernel_sizes``, ``hidden``, ``dropout``, ``padding_mode``."""
    return lai_voxel_classifier("2d", in_channels, num_classes, spatial_dims, **kwargs)


@register_model(
    "lai-triplanar",
    task="segmentation",
    summary="Voxel classifier on 3 orthogonal PxP planes (Lai 2015), one 2D stream each, fused; dense pass",
)
def lai_triplanar(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 3, **kwargs) -> nn.Module:
    """3D only. Kwargs: ``channels``, ``kernel_sizes``, ``hidden``, ``dropout``, ``padding_mode``."""
    return lai_voxel_classifier("triplanar", in_channels, num_classes, spatial_dims, **kwargs)


@register_model(
    "lai-3d",
    task="segmentation",
    summary="Voxel classifier on the PxPxP cube (Lai 2015), kxkxk kernels; dense pass",
)
def lai_3d(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 3, **kwargs) -> nn.Module:
    """Kwargs: ``channels``, ``kernel_sizes``, ``hidden``, ``dropout``, ``padding_mode``."""
    return lai_voxel_classifier("3d", in_channels, num_classes, spatial_dims, **kwargs)
