"""Everything about an image-synthesis run that is not generic training: data, architecture, objective."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from medlearn.data.preprocess import ClassificationPreprocessing, parse_ct_window
from medlearn.errors import MedlearnError
from medlearn.models import create_model, list_models
from medlearn.models.gan import SIZES
from medlearn.utils.settings import settings_from_dict

DEFAULT_MODEL = "dcgan"
#: Critic steps per generator step: Radford et al. alternate 1:1, Gulrajani et al. use 5 for WGAN-GP.
DEFAULT_CRITIC_STEPS = {"dcgan": 1, "wgan-gp": 5}

#: Training defaults for GANs: Adam at a constant 2e-4 (no warm-up, no decay, no clipping), as both papers.
GENERATION_TRAINING_DEFAULTS = {
    "default_epochs": 300,  # --max-minutes without --epochs: the budget decides
    "batch_size": 64,
    "lr": 2e-4,
    "weight_decay": 0.0,
    "warmup_epochs": 0.0,
    "min_lr_ratio": 1.0,
    "grad_clip": None,
    "early_stopping_patience": None,
    "channels_last": False,
    "precision": "auto",
    "eval_every": 5,
}


@dataclass
class GeneratorSettings:
    """Task settings of a synthesis run, stored in ``config.yaml`` under ``generation``."""

    model: str = DEFAULT_MODEL
    image_size: int = 64
    channels: int = 1
    modality: str | None = None
    ct_window: str | None = None
    #: Condition on the class when the data have a ``label`` column (off: ignore labels).
    conditional: bool = True
    latent_dim: int = 128
    #: Channels of the finest layer (DCGAN uses 64; 32 is ~2.5x faster on a CPU and enough at 64x64).
    width: int = 32
    #: Discriminator steps per generator step (None: the objective's default, see DEFAULT_CRITIC_STEPS).
    n_critic: int | None = None
    gp_weight: float = 10.0
    ema_decay: float = 0.999
    #: Share of images held out to compute the validation FID (0: no validation).
    val_fraction: float = 0.1
    #: Fewer training images than this cannot train a GAN meaningfully: refuse.
    min_images: int = 64
    #: Feature network of the validation FID: a classification run directory, or None for the fixed random network.
    features: str | None = None
    #: Write a grid of samples from fixed noise every this many epochs.
    sample_every: int = 1

    def __post_init__(self) -> None:
        if self.image_size not in SIZES:
            raise MedlearnError(f"image_size must be one of {', '.join(map(str, SIZES))}, got {self.image_size}")
        if self.channels not in (1, 3):
            raise MedlearnError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise MedlearnError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.n_critic is not None and self.n_critic < 1:
            raise MedlearnError(f"n_critic must be at least 1, got {self.n_critic}")
        if self.ct_window is not None:
            parse_ct_window(self.ct_window)

    @property
    def critic_steps(self) -> int:
        return self.n_critic or DEFAULT_CRITIC_STEPS.get(self.model, 1)

    @property
    def preprocessing(self) -> ClassificationPreprocessing:
        """Square, resized, [0, 1] intensities (the generator's tanh range is this, rescaled to [-1, 1])."""
        return ClassificationPreprocessing(
            image_size=self.image_size,
            channels=self.channels,
            modality=self.modality,
            ct_window=self.ct_window,
            intensity="unit",
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GeneratorSettings:
        return settings_from_dict(cls, values, "generation")


def build_generation_model(settings: GeneratorSettings, num_classes: int) -> nn.Module:
    """The registered GAN ``settings.model`` at the settings' size, channels and width."""

    known = [entry.name for entry in list_models("generation")]
    if settings.model not in known:
        raise MedlearnError(f"unknown generation model {settings.model!r}; choose one of {', '.join(known)}")
    return create_model(
        settings.model,
        image_size=settings.image_size,
        channels=settings.channels,
        latent_dim=settings.latent_dim,
        width=settings.width,
        num_classes=num_classes,
    )


def read_generation_run(run) -> tuple[dict, GeneratorSettings]:
    """``(config, settings)`` recorded in a generation run directory (a :class:`RunDir`)."""
    config = run.read_config()
    if config.get("task") != "generation":
        raise MedlearnError("not an image-synthesis run (config.yaml task is not 'generation')", run.path)
    try:
        return config, GeneratorSettings.from_dict(config["generation"])
    except (KeyError, TypeError) as error:
        raise MedlearnError(f"config.yaml is not a generation run config ({error})", run.config_path) from None
