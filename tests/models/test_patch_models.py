"""Patch-classification segmenters (Ciresan 2012 "patch-cnn", Lai 2015 "lai-*"): dense pass == patch classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models

CASES = [
    ("patch-cnn", 2),
    ("patch-cnn", 3),
    ("lai-2d", 3),
    ("lai-2d", 2),
    ("lai-triplanar", 3),
    ("lai-3d", 3),
]


def _model(name: str, spatial_dims: int, in_channels: int = 2, num_classes: int = 3, **kwargs):
    """A model in eval mode with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=num_classes, spatial_dims=spatial_dims, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    return model.eval()


def _at(tensor: torch.Tensor, position: tuple[int, ...]) -> torch.Tensor:
    return tensor[(slice(None), slice(None), *position)]


@pytest.mark.parametrize(("name", "spatial_dims"), CASES)
def test_dense_pass_equals_the_patch_classifier(name, spatial_dims):
    model = _model(name, spatial_dims)
    side = model.receptive_field
    radius = side // 2
    assert side % 2 == 1
    shape = (23, 18) if spatial_dims == 2 else (13, 11, 12)
    x = torch.randn(2, 2, *shape)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        dense = model(x)
        padded = F.pad(x, [radius] * 2 * spatial_dims, mode="replicate")
        for _ in range(5):
            position = tuple(int(torch.randint(0, size, (1,), generator=generator)) for size in shape)
            patch = padded[(slice(None), slice(None), *(slice(p, p + side) for p in position))]
            assert patch.shape[2:] == (side,) * spatial_dims
            centre = model.classify_patches(patch)
            assert centre.shape == (2, 3)
            torch.testing.assert_close(_at(dense, position), centre, atol=1e-4, rtol=1e-4)


def test_reflect_padding_is_also_exact():
    model = _model("patch-cnn", 2, padding_mode="reflect")
    side, radius = model.receptive_field, model.receptive_field // 2
    x = torch.randn(1, 2, 20, 17)
    with torch.no_grad():
        dense = model(x)
        padded = F.pad(x, [radius] * 4, mode="reflect")
        for position in [(0, 0), (19, 16), (7, 3)]:
            patch = padded[:, :, position[0] : position[0] + side, position[1] : position[1] + side]
            torch.testing.assert_close(_at(dense, position), model.classify_patches(patch), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("name", "spatial_dims"), CASES)
def test_output_has_the_input_size_and_gradients_flow(name, spatial_dims):
    torch.manual_seed(0)
    model = create_model(name, in_channels=2, num_classes=3, spatial_dims=spatial_dims)
    sizes = [(20, 15), (9, 12)] if spatial_dims == 2 else [(9, 10, 7), (8, 6, 11)]
    for shape in sizes:
        assert model(torch.randn(2, 2, *shape)).shape == (2, 3, *shape)
    out = model(torch.randn(2, 2, *sizes[0]))
    out.square().mean().backward()
    for param in model.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0
    assert isinstance(model.get_submodule(model.gradcam_layer), torch.nn.modules.conv._ConvNd)


def _centre_change(model, offset: tuple[int, int, int]) -> float:
    """How much the centre voxel's logits move when one voxel at ``offset`` from it is perturbed."""
    torch.manual_seed(2)
    x = torch.randn(1, 2, 21, 21, 21)
    centre = (10, 10, 10)
    perturbed = x.clone()
    perturbed[(0, slice(None), *(c + o for c, o in zip(centre, offset, strict=True)))] += 50.0
    with torch.no_grad():
        return (_at(model(x), centre) - _at(model(perturbed), centre)).abs().max().item()


def test_triplanar_only_sees_the_three_planes_through_the_voxel():
    model = _model("lai-triplanar", 3)
    radius = model.receptive_field // 2
    for off_planes in [(1, 1, 1), (-3, 2, 4), (radius, -radius, radius), (2, -5, -1)]:
        assert _centre_change(model, off_planes) == 0.0
    for on_plane in [(0, 0, 0), (1, 2, 0), (0, -3, 1), (2, 0, -2), (0, 0, 4)]:
        assert _centre_change(model, on_plane) > 1e-4
    assert _centre_change(model, (radius + 1, 0, 0)) == 0.0  # outside the patch


def test_2d_classifier_only_sees_its_plane_and_3d_sees_the_cube():
    planar = _model("lai-2d", 3)
    for off_plane in [(0, 0, 1), (2, -1, -3), (0, 0, -5)]:
        assert _centre_change(planar, off_plane) == 0.0
    for on_plane in [(0, 0, 0), (1, -2, 0), (-4, 3, 0)]:
        assert _centre_change(planar, on_plane) > 1e-4
    cube = _model("lai-3d", 3)
    for anywhere in [(1, 1, 1), (-3, 2, 4), (0, 0, 2), (2, -1, -3)]:
        assert _centre_change(cube, anywhere) > 1e-4


def test_registered_as_segmentation_models():
    segmentation = {m.name for m in list_models("segmentation")}
    classification = {m.name for m in list_models("classification")}
    for name in ("patch-cnn", "lai-2d", "lai-triplanar", "lai-3d"):
        assert name in segmentation and name not in classification
    for name, spatial_dims in CASES:
        model = create_model(name, in_channels=2, num_classes=3, spatial_dims=spatial_dims)
        assert isinstance(model.receptive_field, int) and model.receptive_field % 2 == 1
    with pytest.raises(MedlearnError, match="spatial_dims"):
        create_model("lai-triplanar", in_channels=2, num_classes=3, spatial_dims=2)
    with pytest.raises(MedlearnError):
        create_model("patch-cnn", kernel_sizes=(5, 5, 5))  # even receptive field: no centre pixel
    with pytest.raises(MedlearnError):
        create_model("patch-cnn", padding_mode="zeros")


def test_the_three_voxel_classifiers_differ_only_in_kernel_shape():
    params = {
        name: sum(p.numel() for p in create_model(name, spatial_dims=3).parameters())
        for name in ("lai-2d", "lai-triplanar", "lai-3d")
    }
    assert params["lai-2d"] < params["lai-triplanar"]
    assert params["lai-2d"] < params["lai-3d"]
    receptive = {create_model(name, spatial_dims=3).receptive_field for name in params}
    assert len(receptive) == 1


def test_patch_cnn_learns_a_real_nuclei_mask(shared_data):
    import tifffile

    image = tifffile.imread(shared_data / "nuclei-dsb2018/img2d.tif").astype("float32")
    mask = tifffile.imread(shared_data / "nuclei-dsb2018/mask2d.tif") > 0
    image = (image - image.mean()) / image.std()
    crops = [(r, c) for r in (0, 128, 256) for c in (0, 128, 256)]
    x = torch.stack([torch.from_numpy(image[r : r + 48, c : c + 48])[None] for r, c in crops])
    y = torch.stack([torch.from_numpy(mask[r : r + 48, c : c + 48]).long() for r, c in crops])
    torch.manual_seed(0)
    model = create_model("patch-cnn", channels=(8, 16, 24), hidden=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
