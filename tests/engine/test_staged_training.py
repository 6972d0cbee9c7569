"""Staged tasks (a GAN's discriminator then generator) on the one training loop: each stage steps only its own
parameters, per-stage losses reach the history, hooks run every epoch, and a resumed run is exact."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from medlearn.apps.generation.task import AdversarialTask
from medlearn.engine.checkpoint import load_training_state
from medlearn.engine.config import TrainConfig
from medlearn.engine.reproducibility import make_loader_generator
from medlearn.engine.task import StagedTask
from medlearn.engine.trainer import Trainer
from medlearn.models import create_model


def _images(count: int = 32) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, 32, 32, generator=generator) * 2 - 1
    return TensorDataset(images, torch.zeros(count, dtype=torch.long))


def _trainer(tmp_path, objective: str, epochs: int = 2, hooks=(), n_critic: int | None = None):
    torch.manual_seed(0)
    net = create_model(objective, image_size=32, width=8)
    task = AdversarialTask(net.objective, n_critic=n_critic or (2 if objective == "wgan-gp" else 1))
    generator = make_loader_generator(0)
    loader = DataLoader(_images(), batch_size=8, shuffle=True, generator=generator, drop_last=True)
    config = TrainConfig(epochs=epochs, lr=2e-4, warmup_epochs=0, min_lr_ratio=1.0, grad_clip=None, precision="fp32")
    trainer = Trainer(task, net, loader, None, config, tmp_path, generator=generator, quiet=True, epoch_hooks=hooks)
    return trainer, net, task


def test_each_stage_updates_only_its_own_network(tmp_path):
    trainer, net, task = _trainer(tmp_path, "wgan-gp", epochs=1)
    assert isinstance(task, StagedTask) and list(trainer.optimizers) == ["discriminator", "generator"]
    d_before = [p.clone() for p in net.discriminator.parameters()]
    g_before = [p.clone() for p in net.generator.parameters()]
    result = trainer.fit()
    assert all(not torch.equal(a, b) for a, b in zip(net.discriminator.parameters(), d_before, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(net.generator.parameters(), g_before, strict=True))
    row = result.history[0]
    assert {"train_d_loss", "train_g_loss", "train_gp", "train_wasserstein"} <= set(row)
    # 4 batches, n_critic 2: the generator (and its average) stepped twice
    assert int(net.ema_updates) == 2
    state = load_training_state(trainer.run.last_checkpoint)
    assert set(state["optimizers"]) == {"discriminator", "generator"}


def test_epoch_hooks_run_after_each_epoch(tmp_path):
    calls = []
    trainer, _, _ = _trainer(tmp_path, "dcgan", epochs=2, hooks=[lambda epoch, model: calls.append(epoch)])
    trainer.fit()
    assert calls == [1, 2]


def test_resumed_adversarial_run_matches_an_uninterrupted_one(tmp_path):
    straight, straight_net, _ = _trainer(tmp_path / "straight", "dcgan", epochs=2)
    straight.fit()
    first, _, _ = _trainer(tmp_path / "split", "dcgan", epochs=1)
    first.fit()
    resumed, resumed_net, _ = _trainer(tmp_path / "split", "dcgan", epochs=2)
    resumed.fit(resume=True)
    for a, b in zip(straight_net.state_dict().values(), resumed_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_resumed_wgan_gp_keeps_its_critic_generator_cycle_across_the_epoch_boundary(tmp_path):
    """n_critic 5 with 4 batches per epoch: the generator steps on batches 5, 10, ... of the run, which an
    uninterrupted and a resumed run must agree on (the cycle's position is task state, saved in checkpoints)."""
    straight, straight_net, _ = _trainer(tmp_path / "straight", "wgan-gp", epochs=3, n_critic=5)
    straight.fit()
    first, _, _ = _trainer(tmp_path / "split", "wgan-gp", epochs=1, n_critic=5)
    first.fit()
    assert load_training_state(first.run.last_checkpoint)["task"] == {"batches": 4}
    resumed, resumed_net, resumed_task = _trainer(tmp_path / "split", "wgan-gp", epochs=3, n_critic=5)
    resumed.fit(resume=True)
    assert resumed_task.state_dict() == {"batches": 12}
    assert int(resumed_net.ema_updates) == int(straight_net.ema_updates) == 2
    for a, b in zip(straight_net.state_dict().values(), resumed_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_staging_is_declared_not_guessed(tmp_path):
    """A task that merely has a configure_optimizers method (e.g. for a lower backbone lr) is not staged."""
    from tests.engine.test_trainer import ToyTask, fp32, make_trainer

    class WithOptimizers(ToyTask):
        def configure_optimizers(self, model, config):
            raise AssertionError("an undeclared task's configure_optimizers must not be called")

    trainer = make_trainer(tmp_path / "plain", WithOptimizers(), fp32(epochs=1))
    assert not trainer.staged and list(trainer.optimizers) == ["model"]

    class DeclaredWithoutOptimizers(ToyTask):
        staged = True

    import pytest

    with pytest.raises(TypeError, match="declares staged = True but has no configure_optimizers"):
        make_trainer(tmp_path / "bad", DeclaredWithoutOptimizers(), fp32(epochs=1))
