"""Offline metrics of generated images: fidelity, diversity and coverage, no downloaded weights.

Feature-space metrics compare two sets of feature vectors (rows), which come from a
:class:`~medlearn.evaluation.feature_network.FeatureExtractor` (a trained medlearn classifier or a
fixed random network, never Inception weights fetched from the internet):

- :func:`frechet_distance` (FID, Heusel et al. 2017): distance between Gaussians fitted to the two
  sets; the formula and its numerical guards follow the reference ``pytorch-fid``.
- :func:`kernel_inception_distance` (KID, Binkowski et al. 2018): unbiased MMD² with the cubic
  polynomial kernel over random subsets, as ``torch-fidelity`` computes it; unbiased, so ~0 (and
  possibly slightly negative) for two samples of one distribution, and usable on small sets.
- :func:`precision_recall` (Kynkäänniemi et al. 2019): the share of generated samples inside the
  real k-NN manifold (fidelity) and of real samples inside the generated one (coverage).

:func:`ms_ssim_diversity` works on pixels: the mean MS-SSIM of random pairs of distinct images of
one set. Near 1 means the images look alike (mode collapse); compare it with the real set's own
value, which is the reference. Absolute values depend on the feature network and the set sizes:
compare numbers computed with the same extractor and similar numbers of images only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import linalg

from medlearn.errors import MedlearnError

if TYPE_CHECKING:
    from medlearn.evaluation.feature_network import FeatureExtractor

#: MS-SSIM settings of :func:`ms_ssim_diversity`. The standard MS-SSIM (Wang et al. 2003: 5 scales,
#: 11x11 Gaussian window) needs images larger than 160 px in MONAI, so 64 px images would fail:
#: here 4 scales (64 -> 32 -> 16 -> 8 px for a 64 px image) with a 7x7 Gaussian window (sigma 1.5),
#: and the first four of Wang et al.'s scale weights renormalised to sum to 1. Smallest side: 63 px.
MS_SSIM_KERNEL_SIZE = 7
MS_SSIM_KERNEL_SIGMA = 1.5
_WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_weights(scales: int = 4) -> tuple[float, ...]:
    """Wang et al.'s first ``scales`` scale weights, renormalised to sum to 1 (5: the original ones)."""
    if not 1 <= scales <= len(_WANG_WEIGHTS):
        raise MedlearnError(f"MS-SSIM scales must be between 1 and {len(_WANG_WEIGHTS)}, got {scales}")
    weights = _WANG_WEIGHTS[:scales]
    total = sum(weights)
    return tuple(w / total for w in weights)


# --------------------------------------------------------------------------------------------- FID


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and (unbiased, N-1) covariance matrix of ``(N, D)`` features, in float64."""
    features = _check_features(features, "features", minimum=2)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance_from_statistics(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance ``||mu1-mu2||² + Tr(S1 + S2 - 2 sqrtm(S1 S2))`` between two Gaussians.

    As in ``pytorch-fid``: if ``sqrtm(S1 S2)`` is not finite (singular product), ``eps * I`` is added
    to both covariances; tiny imaginary parts from numerical error are dropped, large ones raise.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise MedlearnError(
            f"Fréchet distance needs statistics of one dimension: means {mu1.shape} vs {mu2.shape}, "
            f"covariances {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MedlearnError(
                f"Fréchet distance: sqrtm has a large imaginary component ({np.max(np.abs(covmean.imag)):.3g})"
            )
        covmean = covmean.real
    traces = float(np.trace(sigma1) + np.trace(sigma2))
    value = float(diff @ diff + traces - 2.0 * np.trace(covmean))
    # Identical sets give a tiny negative number from rounding; a clearly negative one is left visible.
    if value < 0 and value > -1e-6 * (traces + 1.0):
        value = 0.0
    return value


def frechet_distance(real_features: np.ndarray, fake_features: np.ndarray, eps: float = 1e-6) -> float:
    """FID between two ``(N, D)`` feature sets (Gaussian fits with unbiased covariances)."""
    real = _check_features(real_features, "real features", minimum=2)
    fake = _check_features(fake_features, "fake features", minimum=2, dim=real.shape[1])
    return frechet_distance_from_statistics(*feature_statistics(real), *feature_statistics(fake), eps=eps)


# --------------------------------------------------------------------------------------------- KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(x, y) = (x·y / d + 1)³`` for all row pairs (the KID kernel)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² estimate (``torch-fidelity``'s "unbiased") of two equally sized samples.

    ``(sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m²``.
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD² over ``subsets`` random subsets.

    Each subset draws ``subset_size`` rows without replacement from each set (capped at the smaller
    set's size), as ``torch-fidelity`` does. The mean can be slightly negative: it is unbiased.
    When both sets are no larger than ``subset_size`` every subset is the whole set: the std is then NaN (reported
    as null), not a meaningless ~1e-16 (it measures subset-sampling spread, not the estimate's uncertainty).
    """
    real = _check_features(real_features, "real features", minimum=2)
    fake = _check_features(fake_features, "fake features", minimum=2, dim=real.shape[1])
    if subsets < 1 or subset_size < 2:
        raise MedlearnError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    size = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for index in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        values[index] = mmd2_unbiased(x, y)
    whole_sets = size == len(real) == len(fake)
    return float(values.mean()), float("nan") if whole_sets else float(values.std())


# -------------------------------------------------------------------------------- precision/recall


def knn_radii(features: np.ndarray, k: int = 3, chunk: int = 1024) -> np.ndarray:
    """Distance of every row to its ``k``-th nearest other row (the radius of its k-NN ball)."""
    features = torch.as_tensor(features, dtype=torch.float64)
    if k < 1 or k >= len(features):
        raise MedlearnError(f"precision/recall needs 1 <= k < number of samples, got k={k} for {len(features)}")
    radii = []
    for start in range(0, len(features), chunk):
        distances = torch.cdist(features[start : start + chunk], features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # k+1: the row itself is at distance 0
    return torch.cat(radii).numpy()


def _inside_manifold(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query row, whether it lies within ``radii[i]`` of some support row ``i``."""
    queries = torch.as_tensor(queries, dtype=torch.float64)
    support = torch.as_tensor(support, dtype=torch.float64)
    radii_t = torch.as_tensor(radii, dtype=torch.float64)[None, :]
    inside = []
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start : start + chunk], support)
        inside.append((distances <= radii_t).any(dim=1))
    return torch.cat(inside).numpy()


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds.

    Precision: share of fake samples inside the real manifold (the union of balls around each real
    sample reaching its k-th nearest real neighbour). Recall: share of real samples inside the fake
    manifold, built the same way. Both in [0, 1]; ``k=3`` is the paper's choice.
    """
    real = _check_features(real_features, "real features", minimum=k + 1)
    fake = _check_features(fake_features, "fake features", minimum=k + 1, dim=real.shape[1])
    precision = _inside_manifold(fake, real, knn_radii(real, k)).mean()
    recall = _inside_manifold(real, fake, knn_radii(fake, k)).mean()
    return float(precision), float(recall)


# ---------------------------------------------------------------------------------------- MS-SSIM


def ms_ssim_diversity(
    images: np.ndarray | torch.Tensor,
    pairs: int = 500,
    seed: int = 0,
    *,
    scales: int | None = None,
    kernel_size: int = MS_SSIM_KERNEL_SIZE,
    batch_size: int = 64,
) -> float:
    """Mean MS-SSIM over random pairs of distinct images of one set (``(N, C, H, W)`` floats in [0, 1]).

    High (towards 1) means the images resemble each other: a sign of mode collapse when the real
    set's own value is clearly lower. When the set has at most ``pairs`` distinct pairs, all of
    them are used. MONAI's ``MultiScaleSSIMMetric`` with ``data_range=1``, ``scales`` scales and a
    ``kernel_size`` Gaussian window (see :data:`MS_SSIM_KERNEL_SIZE`): 4 scales of 7 px by default, so
    64 px and larger images work; ``scales=None`` takes the most scales (up to 4) the image size allows
    (:func:`ms_ssim_scales`: 3 for 32 px).
    """
    from monai.metrics import MultiScaleSSIMMetric

    array = _check_images(images)
    n, height, width = len(array), array.shape[2], array.shape[3]
    if n < 2:
        raise MedlearnError(f"MS-SSIM diversity needs at least 2 images, got {n}")
    if pairs < 1:
        raise MedlearnError(f"MS-SSIM diversity needs pairs >= 1, got {pairs}")
    scales = scales or ms_ssim_scales(min(height, width), kernel_size)
    needed = kernel_size * max(1, scales - 1) ** 2  # MONAI's check: side // (scales-1)² > kernel-1
    if min(height, width) < needed:
        raise MedlearnError(
            f"MS-SSIM with {scales} scales and a {kernel_size} px window needs images of at least "
            f"{needed} px, got {height}x{width}; use fewer scales"
        )
    first, second = _distinct_pairs(n, pairs, seed)
    metric = MultiScaleSSIMMetric(
        spatial_dims=2,
        data_range=1.0,
        kernel_size=kernel_size,
        kernel_sigma=MS_SSIM_KERNEL_SIGMA,
        weights=ms_ssim_weights(scales),
    )
    tensor = torch.from_numpy(array)
    values = []
    with torch.inference_mode():
        for start in range(0, len(first), batch_size):
            a = tensor[first[start : start + batch_size]]
            b = tensor[second[start : start + batch_size]]
            values.append(metric(y_pred=a, y=b).reshape(-1).double())
    metric.reset()
    return float(torch.cat(values).mean())


def ms_ssim_scales(side: int, kernel_size: int = MS_SSIM_KERNEL_SIZE, most: int = 4) -> int:
    """The most MS-SSIM scales (up to ``most``) that MONAI accepts for images of ``side`` pixels."""
    for scales in range(most, 1, -1):
        if side >= kernel_size * (scales - 1) ** 2:
            return scales
    return 1


def _distinct_pairs(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``i != j``: all of them when there are at most ``pairs``, else ``pairs`` random ones."""
    if n * (n - 1) // 2 <= pairs:
        first, second = np.triu_indices(n, k=1)
        return first, second
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=pairs)
    second = (first + rng.integers(1, n, size=pairs)) % n  # uniform over the other n-1 images
    return first, second


# ---------------------------------------------------------------------------------- mode collapse

#: Below this recall the generator reproduces almost none of the real images' variety: collapsed.
COLLAPSE_RECALL = 0.1
#: Generated pairs this much more alike (MS-SSIM) than real pairs, with recall above the bar: less varied.
LOW_DIVERSITY_MARGIN = 0.1


def mode_collapse(metrics: dict) -> tuple[str, str]:
    """``(status, explanation)`` with status ``collapsed``, ``less varied`` or ``varied`` (or ``unknown``).

    Recall is the direct measure (the share of real images with a generated image nearby); MS-SSIM between
    generated images, against the real images' own, shows it without features but also rises for merely
    blurry samples, so alone it only says "less varied".
    """
    recall, fake, real = metrics.get("recall"), metrics.get("ms_ssim"), metrics.get("ms_ssim_real")
    if recall is None or fake is None or real is None:
        return "unknown", "mode collapse could not be assessed (too few images)"
    numbers = f"recall {recall:.2f}, MS-SSIM {fake:.3f} between generated vs {real:.3f} between real images"
    if recall < COLLAPSE_RECALL:
        return "collapsed", f"MODE COLLAPSE: the generator covers almost none of the real variety ({numbers})"
    if fake > real + LOW_DIVERSITY_MARGIN:
        return "less varied", f"generated images are more alike than real ones but cover part of them ({numbers})"
    return "varied", f"no sign of mode collapse ({numbers})"


# ------------------------------------------------------------------------------------- all at once


def evaluate_generated(
    real_images: np.ndarray | torch.Tensor,
    fake_images: np.ndarray | torch.Tensor,
    extractor: FeatureExtractor,
    seed: int = 0,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = 3,
    ms_ssim_pairs: int = 500,
) -> dict:
    """FID, KID (mean, std), precision, recall and MS-SSIM diversity of a generated set, JSON-ready.

    Images are ``(N, C, H, W)`` floats in [0, 1]. ``ms_ssim_real`` is the real set's own diversity,
    the reference to read ``ms_ssim`` (the generated set's) against. Values that cannot be finite
    are ``None`` so the dict passes ``json.dumps(..., allow_nan=False)``.
    """
    real = _check_images(real_images, "real images")
    fake = _check_images(fake_images, "fake images")
    real_features = np.asarray(extractor(real), dtype=np.float64)
    fake_features = np.asarray(extractor(fake), dtype=np.float64)
    kid, kid_std = kernel_inception_distance(
        real_features, fake_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    precision, recall = precision_recall(real_features, fake_features, k=k)
    result = {
        "fid": frechet_distance(real_features, fake_features),
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "ms_ssim": ms_ssim_diversity(fake, pairs=ms_ssim_pairs, seed=seed),
        "ms_ssim_real": ms_ssim_diversity(real, pairs=ms_ssim_pairs, seed=seed),
        "n_real": len(real),
        "n_fake": len(fake),
        "feature_network": str(extractor.description),
        "feature_dim": int(real_features.shape[1]),
        "kid_subset_size": min(kid_subset_size, len(real), len(fake)),
    }
    if len(real) <= real_features.shape[1]:
        result["fid_note"] = (
            f"FID from {len(real)} real images in {real_features.shape[1]} feature dimensions: the covariance is "
            "rank-deficient, so FID is biased upwards; compare FIDs only at equal numbers of images (KID is unbiased)"
        )
    return {key: _finite_or_none(value) for key, value in result.items()}


# ---------------------------------------------------------------------------------------- checks


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_features(features, what: str, *, minimum: int = 1, dim: int | None = None) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise MedlearnError(f"{what} must be a 2D (samples, features) array, got shape {array.shape}")
    if len(array) < minimum:
        raise MedlearnError(f"{what}: need at least {minimum} samples, got {len(array)}")
    if dim is not None and array.shape[1] != dim:
        raise MedlearnError(f"{what} have {array.shape[1]} dimensions, the real ones {dim}")
    if not np.isfinite(array).all():
        raise MedlearnError(f"{what} contain NaN or infinite values")
    return array


def _check_images(images, what: str = "images", tolerance: float = 0.05) -> np.ndarray:
    """``(N, C, H, W)`` float32 in [0, 1]; values slightly outside are clipped, others refused."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4:
        raise MedlearnError(f"{what} must be a (N, C, H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise MedlearnError(f"{what}: the set is empty")
    if not np.isfinite(array).all():
        raise MedlearnError(f"{what} contain NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -tolerance or high > 1 + tolerance:
        raise MedlearnError(f"{what} must be scaled to [0, 1], got values in [{low:.3g}, {high:.3g}]")
    return np.ascontiguousarray(np.clip(array, 0.0, 1.0))


__all__ = [
    "MS_SSIM_KERNEL_SIZE",
    "evaluate_generated",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "kernel_inception_distance",
    "knn_radii",
    "mmd2_unbiased",
    "ms_ssim_diversity",
    "ms_ssim_weights",
    "precision_recall",
]
