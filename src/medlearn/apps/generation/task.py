"""Adversarial training of an :class:`~medlearn.models.gan.AdversarialNet` as a staged engine task.

Each batch runs the discriminator stage, and every ``n_critic``-th batch the generator stage, through
the trainer's ``optimize`` (so clipping, precision, checkpoints and the time budget are the engine's).

- ``nonsaturating`` (DCGAN): D minimises ``softplus(-D(x)) + softplus(D(G(z)))``; G minimises
  ``softplus(-D(G(z)))`` (the non-saturating form Goodfellow et al. recommend).
- ``wgan-gp``: the critic minimises ``D(G(z)) - D(x) + lambda * (||grad D(x_hat)|| - 1)^2`` on random
  interpolates ``x_hat`` (Gulrajani et al. 2017), plus a tiny drift term ``1e-3 * D(x)^2`` that keeps the
  critic's values near zero (Karras et al. 2018); G minimises ``-D(G(z))``. The penalty needs a second
  derivative, computed in float32 even under bf16 autocast.

Validation (optional) compares held-out real images with as many samples of the averaged generator,
drawn from fixed noise, by the Frechet distance of a fixed feature network: the ``fid`` monitor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.engine.checkpoint import unwrap_model
from medlearn.engine.task import Optimize, StepResult
from medlearn.evaluation.generation import frechet_distance
from medlearn.models.gan import AdversarialNet

#: Adam betas per objective: Radford et al. (0.5, 0.999); Gulrajani et al. (0.0, 0.9).
BETAS = {"nonsaturating": (0.5, 0.999), "wgan-gp": (0.0, 0.9)}


class AdversarialTask:
    """The GAN objectives as a :class:`~medlearn.engine.task.StagedTask` (stages ``discriminator``, ``generator``)."""

    monitor = "fid"
    monitor_mode: Literal["max", "min"] = "min"
    staged = True

    def __init__(
        self,
        objective: str,
        *,
        n_critic: int = 1,
        gp_weight: float = 10.0,
        ema_decay: float = 0.999,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        flip: bool = True,
        validation_seed: int = 1234,
    ) -> None:
        if objective not in BETAS:
            raise ValueError(f"unknown adversarial objective {objective!r}; known: {', '.join(BETAS)}")
        self.objective, self.n_critic, self.gp_weight, self.ema_decay = objective, n_critic, gp_weight, ema_decay
        self.features, self.flip, self.validation_seed = features, flip, validation_seed
        self._batches = 0
        self._validation_batches = 0

    def state_dict(self) -> dict[str, int]:
        """Where the critic/generator cycle stands (``n_critic`` batches rarely divide an epoch): saved in
        checkpoints so that a resumed run steps the generator on the same batches as an uninterrupted one."""
        return {"batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._batches = int(state["batches"])

    def configure_optimizers(self, model: nn.Module, config: Any) -> dict[str, torch.optim.Optimizer]:
        net = unwrap_model(model)
        betas = BETAS[self.objective]
        return {
            "discriminator": torch.optim.Adam(net.discriminator.parameters(), lr=config.lr, betas=betas),
            "generator": torch.optim.Adam(net.generator.parameters(), lr=config.lr, betas=betas),
        }

    # -- training ------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch: Any, optimize: Optimize) -> StepResult:
        net = unwrap_model(model)
        real, labels = _images_and_labels(batch, net)
        if self.flip:
            real = _random_horizontal_flip(real)
        count = real.shape[0]
        fake = net.generator(net.noise(count), labels).detach()
        d_loss, extras = self._discriminator_loss(net, real, fake, labels)
        optimize("discriminator", d_loss)
        self._batches += 1
        if self._batches % self.n_critic == 0:
            g_loss = self._generator_loss(net, net.generator(net.noise(count), labels), labels)
            optimize("generator", g_loss)
            net.update_ema(self.ema_decay)
            extras["g_loss"] = float(g_loss.detach())
        extras["d_loss"] = float(d_loss.detach())
        return StepResult(loss=d_loss.detach(), batch_size=count, extras=extras)

    def _discriminator_loss(self, net: AdversarialNet, real, fake, labels) -> tuple[torch.Tensor, dict[str, float]]:
        real_score = net.discriminator(real, labels).float()
        fake_score = net.discriminator(fake, labels).float()
        if self.objective == "nonsaturating":
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            return loss, {"d_real": float(torch.sigmoid(real_score.detach()).mean())}
        penalty = gradient_penalty(net.discriminator, real, fake, labels)
        distance = real_score.mean() - fake_score.mean()
        loss = -distance + self.gp_weight * penalty + 1e-3 * (real_score**2).mean()
        return loss, {"wasserstein": float(distance.detach()), "gp": float(penalty.detach())}

    def _generator_loss(self, net: AdversarialNet, fake, labels) -> torch.Tensor:
        score = net.discriminator(fake, labels).float()
        return F.softplus(-score).mean() if self.objective == "nonsaturating" else -score.mean()

    # -- validation ----------------------------------------------------------------------------
    def validation_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of a batch of real images and of as many samples from fixed noise (same labels)."""
        net = unwrap_model(model)
        real, labels = _images_and_labels(batch, net)
        noise = torch.Generator().manual_seed(self.validation_seed + self._validation_batches)
        self._validation_batches += 1
        fake = net.sample(real.shape[0], labels, generator=noise)
        return self._embed(real), self._embed(fake)

    def validation_metrics(self, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:

        self._validation_batches = 0  # the same noise every epoch: epochs are compared on equal terms
        real = torch.cat([o[0] for o in outputs]).double().numpy()
        fake = torch.cat([o[1] for o in outputs]).double().numpy()
        return {"fid": float(frechet_distance(real, fake))}

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.features is None:
            raise ValueError("validation needs a feature network (AdversarialTask(features=...))")
        return torch.from_numpy(self.features((images.float() + 1.0) / 2.0))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels) -> torch.Tensor:
    """Mean of ``(||grad_x critic(x)|| - 1)^2`` at random points between real and fake images (float32)."""
    with torch.autocast(real.device.type, enabled=False):
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
        scores = critic(mixed, labels)
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def _images_and_labels(batch: Any, net: AdversarialNet) -> tuple[torch.Tensor, torch.Tensor | None]:
    images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
    return images, (labels if net.num_classes else None)


def _random_horizontal_flip(images: torch.Tensor) -> torch.Tensor:
    """Mirror a random half of the batch (brain MRI is close to left-right symmetric)."""
    flip = torch.rand(images.shape[0]) < 0.5
    if not flip.any():
        return images
    images = images.clone()
    images[flip] = images[flip].flip(-1)
    return images
