"""Deterministic image degradations for learning to restore: noise for denoising, downsampling for
super-resolution, each described by a short spec such as ``gaussian:0.05``.

Units. Degradations act on images already mapped to [0, 1] by
:func:`~medlearn.io.intensity.unit_range` (CT: the HU window
mapped linearly to [0, 1] with :func:`~medlearn.io.intensity.ct_window`; MR and everything else: the
0.5-99.5 percentiles mapped to [0, 1] with :func:`~medlearn.io.intensity.display_scale`). A noise
level is therefore a fraction of that unit intensity range: ``gaussian:0.05`` adds noise of standard
deviation 0.05 x 1 (range), i.e. 5% of the window (CT) or of the robust intensity range (MR). Degraded
images are not clipped back to [0, 1] (clipping would bias the noise).

Specs:

- ``gaussian:SIGMA`` - additive white Gaussian noise, std ``SIGMA``.
- ``rician:SIGMA`` - MR magnitude noise: ``|x + n1 + i n2|`` with ``n1, n2 ~ N(0, SIGMA^2)``; std about
  ``SIGMA`` where the signal is bright, a positive Rayleigh floor (mean ``SIGMA * sqrt(pi/2)``) in the
  background.
- ``poisson:DOSE`` - photon-count (quantum) noise as in low-dose CT, in the image domain: a pixel of
  normalised intensity ``x`` counts ``k ~ Poisson(DOSE * x)`` photons and is restored as ``k / DOSE``,
  so its noise std is ``sqrt(x / DOSE)``: signal-dependent, and halving the dose multiplies the noise
  by sqrt(2). ``DOSE`` is the expected count of a pixel at the top of the range (e.g. 200 is very low
  dose, 2000 mild). This is an image-domain approximation (no projection-domain streaks).
- ``downsample:2`` / ``downsample:4`` - anti-aliased reduction by that factor (Gaussian pre-filter,
  then linear interpolation, :func:`skimage.transform.resize`); the network upsamples it back.

As TorchIO's random transforms do, :class:`RandomDegradation` only *samples* the parameters (a noise
seed) from a numpy Generator, then calls the deterministic :func:`degrade`; the same seed always
gives the same degraded image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medlearn.errors import MedlearnError

NoiseKind = Literal["gaussian", "rician", "poisson", "downsample"]
NOISE_KINDS: tuple[str, ...] = ("gaussian", "rician", "poisson")
SCALES: tuple[int, ...] = (2, 4)
SPEC_HELP = "gaussian:SIGMA, rician:SIGMA, poisson:DOSE or downsample:2|4 (e.g. gaussian:0.05)"


@dataclass(frozen=True)
class DegradationSpec:
    """A parsed degradation: ``kind`` and its ``level`` (sigma, dose or scale factor)."""

    kind: NoiseKind
    level: float

    @property
    def task(self) -> Literal["denoise", "sr"]:
        return "sr" if self.kind == "downsample" else "denoise"

    @property
    def scale(self) -> int:
        """Upsampling factor the restoration must undo (1 for noise)."""
        return int(self.level) if self.kind == "downsample" else 1

    @property
    def text(self) -> str:
        level = str(int(self.level)) if self.kind in ("downsample", "poisson") and self.level.is_integer() else None
        return f"{self.kind}:{level or f'{self.level:g}'}"

    def __str__(self) -> str:
        return self.text


def parse_degradation(text: str) -> DegradationSpec:
    """``"gaussian:0.05"`` -> :class:`DegradationSpec`; anything else is a :class:`MedlearnError` quoting it."""
    raw = str(text)
    kind, sep, value = raw.strip().lower().partition(":")
    kind = kind.strip()
    if kind not in (*NOISE_KINDS, "downsample") or not sep:
        raise MedlearnError(f"bad degradation {raw!r}: expected {SPEC_HELP}")
    try:
        level = float(value)
    except ValueError:
        raise MedlearnError(f"bad degradation {raw!r}: {value.strip()!r} is not a number ({SPEC_HELP})") from None
    if not math.isfinite(level):
        raise MedlearnError(f"bad degradation {raw!r}: the level must be a finite number")
    if kind in ("gaussian", "rician") and not 0 < level <= 1:
        raise MedlearnError(f"bad degradation {raw!r}: sigma is a fraction of the unit intensity range, in (0, 1]")
    if kind == "poisson" and level <= 0:
        raise MedlearnError(f"bad degradation {raw!r}: the dose (photon count at full intensity) must be > 0")
    if kind == "downsample" and level not in SCALES:
        raise MedlearnError(f"bad degradation {raw!r}: the downsampling factor must be 2 or 4")
    return DegradationSpec(kind, level)  # type: ignore[arg-type]


# -- the deterministic functions -------------------------------------------------------------------
def add_gaussian_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``image + N(0, sigma^2)`` per pixel (float32)."""
    image = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape).astype(np.float32)
    return image + noise


def add_rician_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of std ``sigma`` per channel (MR)."""
    image = np.asarray(image, dtype=np.float32)
    rng = np.random.default_rng(seed)
    real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.hypot(real, imaginary).astype(np.float32)


def add_poisson_noise(image: np.ndarray, dose: float, seed: int) -> np.ndarray:
    """Photon counts ``Poisson(dose * x)`` divided by ``dose`` (negative intensities count as 0)."""
    image = np.asarray(image, dtype=np.float64)
    counts = np.random.default_rng(seed).poisson(np.clip(image, 0.0, None) * dose)
    return (counts / dose).astype(np.float32)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Anti-aliased reduction of the last two axes by ``factor`` (sizes must be multiples of it)."""
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not a multiple of the factor {factor}")
    shape = (*image.shape[:-2], height // factor, width // factor)
    return resize(image, shape, order=1, anti_aliasing=True, mode="reflect", preserve_range=True).astype(np.float32)


def crop_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """The top-left part of ``image`` whose last two sizes are multiples of ``factor``."""
    height, width = image.shape[-2:]
    return image[..., : height - height % factor, : width - width % factor]


def degrade(image: np.ndarray, spec: DegradationSpec, seed: int = 0) -> np.ndarray:
    """``image`` (unit range, 2D or channel-first) degraded by ``spec``; deterministic in ``seed``.

    For ``downsample`` the image must already be a multiple of the factor in size (see
    :func:`crop_to_multiple`) and the result is smaller by that factor.
    """
    if spec.kind == "gaussian":
        return add_gaussian_noise(image, spec.level, seed)
    if spec.kind == "rician":
        return add_rician_noise(image, spec.level, seed)
    if spec.kind == "poisson":
        return add_poisson_noise(image, spec.level, seed)
    return downsample(image, spec.scale)


# -- the random transform --------------------------------------------------------------------------
@dataclass(frozen=True)
class DegradationParameters:
    """What :class:`RandomDegradation` sampled for one image."""

    seed: int


@dataclass(frozen=True)
class RandomDegradation:
    """Samples parameters from a numpy Generator, then applies :func:`degrade` deterministically."""

    spec: DegradationSpec

    def sample(self, rng: np.random.Generator) -> DegradationParameters:
        return DegradationParameters(seed=int(rng.integers(2**63 - 1)))

    def apply(self, image: np.ndarray, parameters: DegradationParameters) -> np.ndarray:
        return degrade(image, self.spec, parameters.seed)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(image, self.sample(rng))


# -- units -----------------------------------------------------------------------------------------
