"""Full-reference image quality: PSNR, SSIM and MAE of a restored (or synthesised) image against its
reference, on numpy arrays.

``data_range`` is the span of intensities the images live in, *not* measured from the data: medlearn's
restoration works on images mapped to [0, 1] (see :mod:`medlearn.data.degradation`), so the default
is 1.0. PSNR = 10 log10(data_range^2 / MSE) in dB (infinite for identical images). SSIM follows Wang
et al. 2004 as scikit-image implements it with ``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False`` (the paper's 11x11 Gaussian window), over all spatial axes; images
smaller than the window use the largest odd window that fits.
"""

from __future__ import annotations

import numpy as np

from medlearn.errors import MedlearnError

DATA_RANGE = 1.0


def _pair(restored: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    restored = np.asarray(restored, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if restored.shape != reference.shape:
        raise MedlearnError(f"cannot compare images of shapes {restored.shape} and {reference.shape}")
    if restored.size == 0:
        raise MedlearnError("cannot compare empty images")
    return restored, reference


def psnr(restored: np.ndarray, reference: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` when the images are identical)."""
    restored, reference = _pair(restored, reference)
    mse = float(np.mean((restored - reference) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(restored: np.ndarray, reference: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Structural similarity (mean SSIM over the image), 1 for identical images.

    A leading axis of size 1 (channel-first grey) is dropped; every remaining axis is spatial.
    """
    from skimage.metrics import structural_similarity

    restored, reference = _pair(restored, reference)
    if restored.ndim > 2 and restored.shape[0] == 1:
        restored, reference = restored[0], reference[0]
    smallest = min(restored.shape)
    if smallest < 3:
        raise MedlearnError(f"SSIM needs images of at least 3 pixels per axis, got {restored.shape}")
    window = min(11, smallest if smallest % 2 else smallest - 1)
    return float(
        structural_similarity(
            restored,
            reference,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            win_size=window,
        )
    )


def mae(restored: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute error, in the images' own units."""
    restored, reference = _pair(restored, reference)
    return float(np.mean(np.abs(restored - reference)))


def quality(restored: np.ndarray, reference: np.ndarray, data_range: float = DATA_RANGE) -> dict[str, float]:
    """``{"psnr": ..., "ssim": ...}`` of one image pair."""
    return {"psnr": psnr(restored, reference, data_range), "ssim": ssim(restored, reference, data_range)}
