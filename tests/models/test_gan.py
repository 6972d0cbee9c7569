"""The DCGAN architecture at every size, conditional and not, and its generator average."""

from __future__ import annotations

import pytest
import torch

from medlearn.errors import MedlearnError
from medlearn.models import create_model
from medlearn.models.gan import AdversarialNet


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size: int, channels: int):
    net = create_model("dcgan", image_size=size, channels=channels, width=8, num_classes=2)
    labels = torch.tensor([0, 1, 1])
    images = net.generator(net.noise(3), labels)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh range
    assert net.discriminator(images, labels).shape == (3,)


def test_wgan_gp_shares_the_architecture_but_not_batch_norm_in_the_critic():
    dcgan = create_model("dcgan", image_size=64, width=8)
    wgan = create_model("wgan-gp", image_size=64, width=8)
    assert [p.shape for p in dcgan.generator.parameters()] == [p.shape for p in wgan.generator.parameters()]
    kinds = {type(m).__name__ for m in wgan.discriminator.modules()}
    assert "BatchNorm2d" not in kinds and "GroupNorm" in kinds  # a per-sample gradient penalty forbids batch norm
    assert "BatchNorm2d" in {type(m).__name__ for m in dcgan.discriminator.modules()}
    assert (dcgan.objective, wgan.objective) == ("nonsaturating", "wgan-gp")


def test_labels_change_a_conditional_generators_output():
    net = create_model("dcgan", image_size=32, width=8, num_classes=2).eval()
    z = net.noise(2, torch.Generator().manual_seed(0))
    first = net.generator(z, torch.tensor([0, 0]))
    second = net.generator(z, torch.tensor([1, 1]))
    assert not torch.allclose(first, second)
    with pytest.raises(MedlearnError, match="class-conditional"):
        net.sample(2)


def test_moving_average_follows_the_generator():
    net: AdversarialNet = create_model("dcgan", image_size=32, width=8)
    with torch.no_grad():
        for p in net.generator.parameters():
            p.add_(1.0)
    before = [p.clone() for p in net.generator_ema.parameters()]
    net.update_ema(0.999)
    moved = [((a - b).abs().max() > 0).item() for a, b in zip(net.generator_ema.parameters(), before, strict=True)]
    assert all(moved)
    assert int(net.ema_updates) == 1
    assert not any(p.requires_grad for p in net.generator_ema.parameters())
    net.train()
    assert not net.generator_ema.training  # the average only samples


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(MedlearnError, match="image size"):
        create_model("dcgan", image_size=100)
