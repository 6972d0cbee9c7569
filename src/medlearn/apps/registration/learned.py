"""A trained registration model rebuilt from its run folder, registering one pair like a classical method does:
the result is an ITK transform (the affine pre-alignment composed with the network's displacement field), so
``register pair`` and ``register evaluate`` write and score it with the same code as the classical methods.

The fixed image gives the network grid (its closest RAS+ orientation at the run's spacing); the moving image is
affinely pre-aligned to it with SimpleITK, resampled onto that grid, and the network predicts the displacement
left. ``refine_steps`` > 0 then optimises the velocity field of this one pair for that many steps from the
network's answer (instance optimisation), with the training loss minus the label term (no labels at test time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.apps.registration.classical import RegistrationResult
from medlearn.apps.registration.cohort import affine_alignment, network_grid, onto_grid, to_unit_range
from medlearn.apps.registration.settings import TASK, RegistrationSettings
from medlearn.apps.registration.task import RegistrationTask
from medlearn.apps.registration.train import build_registration_model
from medlearn.engine.checkpoint import checkpoint_weights_file, load_weights
from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.itk import compose, field_transform

#: Learning rate of test-time refinement (voxels of velocity per Adam step).
REFINE_LR = 0.05


@dataclass
class LearnedRegistration:
    model: nn.Module
    settings: RegistrationSettings
    run_dir: Path
    refine_steps: int = 0

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, refine_steps: int | None = None) -> LearnedRegistration:
        run = RunDir.open(run_dir)
        config = run.read_config()
        if config.get("task") != TASK:
            raise MedlearnError(f"not a registration run (config.yaml task is {config.get('task')!r})", run.path)
        settings = RegistrationSettings.from_dict(dict(config[TASK]))
        if settings.grid_spacing is None:
            raise MedlearnError("the run has no grid spacing recorded: it never finished preparing", run.config_path)
        dims = int(config.get("data", {}).get("spatial_dims", 3))
        model = build_registration_model(settings, dims)
        load_weights(model, checkpoint_weights_file(run.path, "best"))
        model.eval().requires_grad_(False)  # refinement optimises the velocity field only
        steps = settings.refine_steps if refine_steps is None else refine_steps
        return cls(model, settings, run.path, steps)

    @property
    def name(self) -> str:
        return f"learned ({self.run_dir.name})" + (
            f" + {self.refine_steps} refinement steps" if self.refine_steps else ""
        )

    def __call__(
        self, fixed: MedicalImage, moving: MedicalImage, mask: MedicalImage | None = None
    ) -> RegistrationResult:
        """Register ``moving`` to ``fixed`` (a :data:`~medlearn.apps.registration.classical.Registerer`)."""
        if mask is not None:
            raise MedlearnError("a fixed-image mask is used by the classical methods only, not by a trained model")
        return self.register(fixed, moving)

    def register(self, fixed: MedicalImage, moving: MedicalImage) -> RegistrationResult:
        if fixed.spatial_ndim != self.model.spatial_dims or moving.spatial_ndim != self.model.spatial_dims:
            raise MedlearnError(
                f"the model registers {self.model.spatial_dims}D images; got {fixed.spatial_ndim}D and "
                f"{moving.spatial_ndim}D",
                moving.source,
            )
        started = time.perf_counter()
        grid = network_grid(fixed, self.settings.grid_spacing)
        pre_alignment = affine_alignment(fixed, moving, self.settings.init)
        pair = torch.from_numpy(
            np.concatenate(
                [to_unit_range(onto_grid(fixed, grid, None)), to_unit_range(onto_grid(moving, grid, pre_alignment))]
            )
        )[None]
        with torch.no_grad():
            velocity = self.model.velocity(pair)
        if self.refine_steps:
            velocity = self._refine(pair, velocity)
        with torch.no_grad():
            ddf = self.model.to_displacement(velocity)[0].numpy().astype(np.float64)
        ndim = grid.spatial_ndim
        steps = np.asarray(grid.affine[:ndim, :ndim], np.float64)  # voxel step -> mm (RAS)
        field_mm = np.einsum("wa,a...->w...", steps, ddf).astype(np.float32)
        deformable = field_transform(image_from_affine(field_mm, grid.affine))
        transform = compose(deformable, pre_alignment)
        return RegistrationResult(transform, float("nan"), time.perf_counter() - started, self.name)

    def _refine(self, pair: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        task = RegistrationTask(self.settings, self.model.spatial_dims, num_labels=0)
        velocity = velocity.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([velocity], lr=REFINE_LR)
        for _ in range(self.refine_steps):
            optimiser.zero_grad()
            loss, _ = task.objective(self.model, pair, self.model.to_displacement(velocity))
            loss.backward()
            optimiser.step()
        return velocity.detach()
