from __future__ import annotations

import torch

from medlearn.models import create_model, list_models


def test_unet_is_a_segmentation_model_not_a_classifier():
    assert "unet" in {m.name for m in list_models("segmentation")}
    assert "unet" not in {m.name for m in list_models("classification")}


def test_unet_2d_and_3d_shapes_and_gradients():
    torch.manual_seed(0)
    model = create_model("unet", in_channels=2, num_classes=3, spatial_dims=2, depth=3)
    x = torch.randn(2, 2, 64, 48)
    out = model(x)
    assert out.shape == (2, 3, 64, 48)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    volume = create_model("unet", spatial_dims=3, depth=2, base_channels=8)(torch.randn(1, 1, 16, 16, 16))
    assert volume.shape == (1, 2, 16, 16, 16)


def test_unet_learns_a_real_nuclei_mask(shared_data):
    import tifffile

    image = tifffile.imread(shared_data / "nuclei-dsb2018/img2d.tif").astype("float32")
    mask = tifffile.imread(shared_data / "nuclei-dsb2018/mask2d.tif") > 0
    image = (image - image.mean()) / image.std()
    crops = [(r, c) for r in (0, 128, 256) for c in (0, 128, 256)]
    x = torch.stack([torch.from_numpy(image[r : r + 64, c : c + 64])[None] for r, c in crops])
    y = torch.stack([torch.from_numpy(mask[r : r + 64, c : c + 64]).long() for r, c in crops])
    torch.manual_seed(0)
    model = create_model("unet", depth=3, base_channels=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
