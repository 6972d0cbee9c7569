"""Classical restoration baselines from scikit-image, to measure a learned enhancer against.

Denoising (on unit-range images, see :mod:`medlearn.data.degradation`):

- ``nl_means``: non-local means (Buades et al. 2005), ``denoise_nl_means`` with 5x5 patches, search
  distance 6, ``h = 0.8 sigma`` and ``sigma`` passed in (scikit-image's recommended setting).
- ``bilateral``: ``denoise_bilateral`` with ``sigma_color = sigma``, ``sigma_spatial = 2`` px.
- ``tv``: total-variation denoising (Chambolle 2004), ``denoise_tv_chambolle`` with ``weight = sigma``.

These parameter rules were chosen once on real MR, CT and Br35H slices (the best of a small grid per
method, at sigma 0.05 and 0.1), never per test image.

The baselines are given the TRUE noise level of the degradation (the spec's sigma), which favours them:
a real user would have to estimate it (:func:`estimate_noise_sigma`, scikit-image's wavelet estimate).
Each noise model gets the classical treatment for it:

- Gaussian: the denoiser as is.
- Rician (MR magnitude): the denoiser, then the bias correction ``sqrt(max(y^2 - 2 sigma^2, 0))``
  (``E[M^2] = A^2 + 2 sigma^2``), which removes the Rayleigh floor of the background.
- Poisson: the Anscombe variance-stabilising transform ``z = 2 sqrt(counts + 3/8)`` (unit noise std),
  the Gaussian denoiser on it, and the asymptotically unbiased inverse ``(z/2)^2 - 1/8``.

Super-resolution: ``bicubic`` interpolation of the low-resolution image (cubic spline,
``skimage.transform.resize(order=3)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medlearn.data.degradation import DegradationSpec

DENOISE_BASELINES: tuple[str, ...] = ("nl_means", "bilateral", "tv")
SR_BASELINES: tuple[str, ...] = ("bicubic",)

Denoiser = Callable[[np.ndarray, float], np.ndarray]


def nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means of a 2D image with noise std ``sigma``."""
    from skimage.restoration import denoise_nl_means

    noisy = np.asarray(noisy, dtype=np.float64)
    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)


def bilateral(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Bilateral filter of a 2D image with noise std ``sigma`` (range kernel ``sigma``, spatial 2 px)."""
    from skimage.restoration import denoise_bilateral

    return denoise_bilateral(np.asarray(noisy, dtype=np.float64), sigma_color=sigma, sigma_spatial=2.0)


def total_variation(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Chambolle's total-variation denoising of a 2D image with noise std ``sigma`` (weight = sigma)."""
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(np.asarray(noisy, dtype=np.float64), weight=sigma)


DENOISERS: dict[str, Denoiser] = {"nl_means": nl_means, "bilateral": bilateral, "tv": total_variation}


def estimate_noise_sigma(noisy: np.ndarray) -> float:
    """Blind estimate of Gaussian noise std (wavelet MAD, scikit-image's ``estimate_sigma``)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(np.asarray(noisy, dtype=np.float64)))


def classical_denoise(name: str, noisy: np.ndarray, spec: DegradationSpec, sigma: float | None = None) -> np.ndarray:
    """Baseline ``name`` ("nl_means", "bilateral", "tv") for noise ``spec``, as float32.

    ``sigma`` overrides the spec's true noise level (Gaussian/Rician); for Poisson the dose is used.
    """
    denoiser = DENOISERS[name]
    noisy = np.asarray(noisy, dtype=np.float64)
    if spec.kind == "poisson":
        dose = spec.level
        top = 2.0 * np.sqrt(dose + 3.0 / 8.0)  # Anscombe of the brightest expected count: keeps z in ~[0, 1]
        z = 2.0 * np.sqrt(np.clip(noisy * dose, 0.0, None) + 3.0 / 8.0) / top
        restored_z = denoiser(z, 1.0 / top) * top
        return (np.clip((restored_z / 2.0) ** 2 - 1.0 / 8.0, 0.0, None) / dose).astype(np.float32)
    level = float(sigma if sigma is not None else spec.level)
    restored = denoiser(noisy, level)
    if spec.kind == "rician":
        restored = np.sqrt(np.clip(restored**2 - 2.0 * level**2, 0.0, None))
    return restored.astype(np.float32)


def bicubic(low_resolution: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cubic-spline upsampling of a 2D image to ``shape``."""
    from skimage.transform import resize

    image = np.asarray(low_resolution, dtype=np.float64)
    return resize(image, shape, order=3, mode="reflect", anti_aliasing=False, preserve_range=True).astype(np.float32)


def classical_baselines(
    degraded: np.ndarray, spec: DegradationSpec, shape: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Every baseline's restoration of ``degraded``: ``nl_means``/``bilateral``/``tv`` for noise,
    ``bicubic`` (to ``shape``, default ``scale`` times larger) for downsampling."""
    if spec.task == "sr":
        target = shape or tuple(int(n) * spec.scale for n in np.shape(degraded)[-2:])
        return {"bicubic": bicubic(degraded, target)}  # type: ignore[arg-type]
    return {name: classical_denoise(name, degraded, spec) for name in DENOISE_BASELINES}
