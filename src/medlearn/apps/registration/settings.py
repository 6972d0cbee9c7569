"""Everything about a learned-registration run that is not generic training: grid, losses, pairs, model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from medlearn.errors import MedlearnError
from medlearn.utils.settings import settings_from_dict

TASK = "registration"
SIMILARITIES = ("lncc", "mse", "mi")
CONTRASTS = ("same", "random")
INITS = ("affine", "none")

#: Training defaults (the engine's generic defaults are task-agnostic): one pair per step, a small learning
#: rate's worth of warm-up, and a budget that decides the epochs.
REGISTRATION_TRAINING_DEFAULTS = {
    "default_epochs": 40,
    "batch_size": 1,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_epochs": 1.0,
    "grad_clip": 1.0,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "fp32",  # displacement fields need float32 gradients (bf16 rounds sub-voxel steps away)
}


@dataclass
class RegistrationSettings:
    """Task settings of a registration run, stored in ``config.yaml`` under ``registration``."""

    model: str = "voxelmorph"
    model_kwargs: dict = field(default_factory=dict)
    #: Isotropic spacing (mm) of the network's grid; None: the cohort's median spacing, coarsened until the
    #: grid holds at most ``max_voxels``.
    spacing: float | None = None
    max_voxels: int = 200_000
    #: Affine pre-alignment (SimpleITK) of every moving image before the network: it learns what is left.
    init: str = "affine"
    #: Image similarity: local NCC (one contrast), MSE, or global mutual information (several contrasts).
    similarity: str = "lncc"
    #: Weight of the diffusion regulariser (squared gradient of the displacement, in voxels).
    smoothness: float = 1.0
    #: Weight of the Dice loss of warped label maps (used when the cohort has labels).
    label_weight: float = 1.0
    #: Share of training pairs whose moving image is a synthetic deformation of the fixed one (always when the
    #: cohort has one image); RMS size of those deformations in mm.
    synthetic_share: float = 0.5
    synthetic_mm: float = 4.0
    #: ``random``: each image of a pair gets its own random intensity mapping (gamma, inversion): with label
    #: Dice or mutual information the model learns to align across contrasts (SynthMorph's idea).
    contrast: str = "same"
    batches_per_epoch: int = 25
    val_fraction: float = 0.2
    val_pairs: int = 6
    #: Test-time refinement steps of the velocity field on each pair (instance optimisation; 0: off).
    refine_steps: int = 0
    #: Recorded by training: the network grid's spacing and whether the cohort had labels.
    grid_spacing: float | None = None
    labelled: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("similarity", self.similarity, SIMILARITIES),
            ("contrast", self.contrast, CONTRASTS),
            ("init", self.init, INITS),
        ):
            if value not in allowed:
                raise MedlearnError(f"registration {name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0.0 <= self.synthetic_share <= 1.0:
            raise MedlearnError(f"synthetic_share must be in [0, 1], got {self.synthetic_share}")
        if self.spacing is not None and self.spacing <= 0:
            raise MedlearnError(f"spacing must be positive, got {self.spacing}")
        if self.refine_steps < 0 or self.batches_per_epoch < 1 or self.val_pairs < 1:
            raise MedlearnError("refine_steps must be >= 0, batches_per_epoch and val_pairs >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RegistrationSettings:
        return settings_from_dict(cls, values, TASK)
