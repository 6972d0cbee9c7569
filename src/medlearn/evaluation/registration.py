"""How good a registration is: image similarity, overlap of warped labels, landmark error and the regularity of
the deformation (published tables show that higher Dice often comes with folded voxels, so both are reported).

- ``ncc``: Pearson correlation of the fixed and the warped image over the voxels both cover (one contrast);
- ``nmi``: normalised mutual information (Studholme, (H(A) + H(B)) / H(A, B), 1 to 2; any contrasts), 64 bins;
- ``dice``: mean over the labels present in either map of the warped labels against the fixed ones;
- ``tre_mm``: mean distance between mapped points and their annotated positions;
- ``folding_fraction``: share of voxels whose Jacobian determinant is <= 0;
- ``sdlogj``: standard deviation of log(Jacobian determinant) over the voxels where it is positive (Learn2Reg's
  regularity figure; 0 for a rigid motion).
"""

from __future__ import annotations

import numpy as np

NMI_BINS = 64


def ncc(fixed: np.ndarray, warped: np.ndarray, overlap: np.ndarray | None = None) -> float:
    a, b = _paired(fixed, warped, overlap)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def nmi(fixed: np.ndarray, warped: np.ndarray, overlap: np.ndarray | None = None, bins: int = NMI_BINS) -> float:
    a, b = _paired(fixed, warped, overlap)
    if a.size < 2:
        return float("nan")
    joint, _, _ = np.histogram2d(a, b, bins=bins)
    joint = joint / joint.sum()
    entropy = lambda p: -float(np.sum(p[p > 0] * np.log(p[p > 0])))  # noqa: E731
    joint_entropy = entropy(joint)
    return (entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0))) / joint_entropy if joint_entropy else float("nan")


def _paired(fixed: np.ndarray, warped: np.ndarray, overlap: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(fixed, np.float64).ravel(), np.asarray(warped, np.float64).ravel()
    if overlap is not None:
        keep = np.asarray(overlap, bool).ravel()
        a, b = a[keep], b[keep]
    return a, b


def label_dice(fixed_labels: np.ndarray, warped_labels: np.ndarray) -> dict[str, float]:
    """Dice per label value present in either map (background 0 left out) and their mean (``mean``)."""
    values = sorted(set(np.unique(fixed_labels).tolist()) | set(np.unique(warped_labels).tolist()) - {0})
    per_label = {}
    for value in values:
        a, b = fixed_labels == value, warped_labels == value
        total = int(a.sum() + b.sum())
        per_label[str(value)] = 2.0 * float(np.logical_and(a, b).sum()) / total if total else float("nan")
    finite = [v for v in per_label.values() if np.isfinite(v)]
    return {"mean": float(np.mean(finite)) if finite else float("nan"), **per_label}


def target_registration_error(mapped: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance (mm) of each mapped point from where it should be, ``(n,)``."""
    return np.linalg.norm(np.asarray(mapped, float) - np.asarray(truth, float), axis=1)


def regularity(determinant: np.ndarray) -> dict[str, float]:
    """``folding_fraction``, ``sdlogj`` and ``min_jacobian`` of a deformation, from its Jacobian determinant per
    voxel (:func:`medlearn.data.deformation.jacobian_determinant` of the displacement field, computed once by the
    caller, who also writes or shows it)."""
    positive = determinant[determinant > 0]
    return {
        "folding_fraction": float(np.mean(determinant <= 0)),
        "sdlogj": float(np.std(np.log(positive))) if positive.size else float("nan"),
        "min_jacobian": float(determinant.min()),
    }


def bootstrap_mean_interval(values, n_boot: int = 1000, seed: int = 0) -> list[float | None]:
    """95% percentile-bootstrap interval of the mean over the given values (pairs); ``[None, None]`` below 3."""
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if finite.size < 3:
        return [None, None]
    rng = np.random.default_rng(seed)
    means = finite[rng.integers(0, finite.size, (n_boot, finite.size))].mean(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]
