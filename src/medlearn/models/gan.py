"""DCGAN-style generator and discriminator (Radford et al. 2015), unconditional or class-conditional.

One architecture serves both adversarial objectives, as Han et al. (2018) compare them: ``dcgan`` trains
it with the non-saturating loss, ``wgan-gp`` with the Wasserstein loss and a gradient penalty. The one
change WGAN-GP forces is the critic's normalisation: a gradient penalty is defined per sample, which
batch normalisation breaks (Gulrajani et al. 2017), so the critic uses layer normalisation
(``GroupNorm(1, C)``) instead; the generator is identical.

The generator doubles the resolution from 4x4 with transposed convolutions (BatchNorm + ReLU, tanh
output in [-1, 1]); the discriminator halves it with strided convolutions (LeakyReLU 0.2). Class
conditioning: a learned label embedding concatenated to the noise, and a projection discriminator
(Miyato & Koyama 2018: the score gains ``<embed(y), features>``). The network keeps an exponential moving
average of the generator (``generator_ema``), which samples better than the raw weights and is what
``forward`` and :meth:`AdversarialNet.sample` use.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.registry import register_model

SIZES = (32, 64, 128, 256)
#: The adversarial objective each registered GAN is trained with.
OBJECTIVES = {"dcgan": "nonsaturating", "wgan-gp": "wgan-gp"}


def _levels(image_size: int) -> int:
    if image_size not in SIZES:
        raise MedlearnError(f"GAN image size must be one of {', '.join(map(str, SIZES))}, not {image_size}")
    return int(math.log2(image_size)) - 2  # resolution doublings from 4x4


def _widths(image_size: int, width: int) -> list[int]:
    """Channels from the 4x4 level up (coarse to fine): ``width * 2**k``, capped at ``8 * width``."""
    levels = _levels(image_size)
    return [width * min(8, 2 ** (levels - 1 - i)) for i in range(levels)]


class Generator(nn.Module):
    """Noise (and a class label) to an image in [-1, 1]."""

    def __init__(
        self, image_size: int, channels: int, latent_dim: int = 128, width: int = 64, num_classes: int = 0
    ) -> None:
        super().__init__()
        widths = _widths(image_size, width)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_dim = latent_dim * (2 if num_classes else 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: give labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """An image (and its class) to one real-vs-fake score (a logit, or a Wasserstein critic value)."""

    def __init__(self, image_size: int, channels: int, width: int = 64, num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        widths = list(reversed(_widths(image_size, width)))  # fine to coarse
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), _norm(norm, c_out), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(widths[-1], 1, 4, 1, 0)
        self.embed = nn.Embedding(num_classes, widths[-1]) if num_classes else None
        self.apply(_dcgan_init)
        if self.embed is not None:  # a projection starting near zero: the class term grows only as it helps
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(images)
        score = self.score(features).flatten()
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: give labels")
            score = score + (self.embed(labels) * features.mean(dim=(2, 3))).sum(dim=1)
        return score


class AdversarialNet(nn.Module):
    """Generator, discriminator and the generator's moving average, saved and loaded as one model."""

    def __init__(
        self,
        *,
        objective: str,
        image_size: int = 64,
        channels: int = 1,
        latent_dim: int = 128,
        width: int = 64,
        num_classes: int = 0,
        critic_norm: str | None = None,
    ) -> None:
        super().__init__()
        self.objective, self.image_size, self.channels = objective, image_size, channels
        self.latent_dim, self.num_classes = latent_dim, num_classes
        norm = critic_norm or ("layer" if objective == "wgan-gp" else "batch")
        self.generator = Generator(image_size, channels, latent_dim, width, num_classes)
        self.discriminator = Discriminator(image_size, channels, width, num_classes, norm)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> AdversarialNet:
        super().train(mode)
        self.generator_ema.eval()  # the average is only ever used for sampling
        return self

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """Move the average towards the generator; the effective decay ramps up over the first updates
        so early, poor weights are forgotten quickly."""
        self.ema_updates += 1
        rate = min(decay, (1.0 + float(self.ema_updates)) / (10.0 + float(self.ema_updates)))
        for average, current in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            average.lerp_(current, 1.0 - rate)
        for average, current in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            average.copy_(current)

    def noise(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(count, self.latent_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from the averaged generator."""
        return self.generator_ema(z, labels if self.num_classes else None)

    @torch.no_grad()
    def sample(
        self, count: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``count`` images in [-1, 1] (averaged generator); ``labels`` required for a conditional model."""
        if self.num_classes and labels is None:
            raise MedlearnError("this generator is class-conditional: say which class to sample")
        z = self.noise(count, generator)
        if labels is not None:
            labels = labels.to(z.device)
        return self.forward(z, labels)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise MedlearnError(f"unknown critic normalisation {kind!r}; use batch, layer or none")


def _dcgan_init(module: nn.Module) -> None:
    """Radford et al.: weights from N(0, 0.02), normalisation scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@register_model("dcgan", task="generation")
def dcgan(**kwargs) -> AdversarialNet:
    """DCGAN (Radford et al.) with the non-saturating loss; batch-norm discriminator."""
    return AdversarialNet(objective=OBJECTIVES["dcgan"], **kwargs)


@register_model("wgan-gp", task="generation")
def wgan_gp(**kwargs) -> AdversarialNet:
    """The same DCGAN architecture trained as a Wasserstein GAN with gradient penalty (layer-norm critic)."""
    return AdversarialNet(objective=OBJECTIVES["wgan-gp"], **kwargs)
