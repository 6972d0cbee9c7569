"""Standard deep CNN baselines (ResNet, DenseNet) from MONAI, 2D or 3D.

MONAI's ResNets default to a stride-1 7x7 stem, built for small 3D volumes; on 2D slices that
makes every later layer work at 4x the resolution (4.6x slower on CPU for no accuracy benefit at
128x128), so the stem stride here defaults to 2 as in the original ResNet. ``resnet10`` is the
cheap CPU default.
"""

from __future__ import annotations

from collections.abc import Callable

from monai.networks import nets
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model
from medlearn.models.shallow import check_spatial_dims

#: Backbone name -> MONAI ResNet constructor (shared with the synergic model's components).
RESNETS: dict[str, Callable[..., nets.ResNet]] = {
    "resnet10": nets.resnet10,
    "resnet18": nets.resnet18,
    "resnet34": nets.resnet34,
    "resnet50": nets.resnet50,
}


def build_resnet(arch: str, in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nets.ResNet:
    """A MONAI ResNet with a stride-2 stem and ``gradcam_layer = "layer4"`` (its last residual stage)."""
    check_spatial_dims(spatial_dims)
    if arch not in RESNETS:
        raise MedlearnError(f"unknown ResNet {arch!r}; choose one of {', '.join(RESNETS)}")
    kwargs.setdefault("conv1_t_stride", 2)
    model = RESNETS[arch](spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs)
    model.gradcam_layer = "layer4"
    return model


@register_model(
    "resnet10", task="classification", summary="ResNet-10 (MONAI, stride-2 stem): the fastest deep baseline"
)
def resnet10(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    return build_resnet("resnet10", in_channels, num_classes, spatial_dims, **kwargs)


@register_model("resnet18", task="classification", summary="ResNet-18 (MONAI, stride-2 stem): deep CNN baseline")
def resnet18(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    return build_resnet("resnet18", in_channels, num_classes, spatial_dims, **kwargs)


@register_model("resnet34", task="classification", summary="ResNet-34 (MONAI, stride-2 stem): deeper baseline")
def resnet34(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    return build_resnet("resnet34", in_channels, num_classes, spatial_dims, **kwargs)


@register_model("densenet121", task="classification", summary="DenseNet-121 (MONAI): dense-connectivity baseline")
def densenet121(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """MONAI DenseNet-121; Grad-CAM uses ``class_layers.relu``, the activated last dense block output."""
    check_spatial_dims(spatial_dims)
    model = nets.DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kwargs)
    model.gradcam_layer = "class_layers.relu"
    return model
