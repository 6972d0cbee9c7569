"""Is a predicted 90 % really right 90 % of the time? Expected calibration error, reliability bins,
and temperature scaling (Guo et al., 2017) fitted on validation logits.

Calibration uses the *top-label* confidence (the probability of the predicted class), the usual
definition for both binary and multi-class classifiers. Temperature scaling divides logits by one
scalar ``T > 0``: it never changes the arg-max prediction, so accuracy, sensitivity and specificity
stay identical while over-confident probabilities (``T > 1``) are softened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medlearn.errors import MedlearnError
from medlearn.evaluation.classification import as_probability_matrix


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins: what the reliability diagram draws, bin by bin."""

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1
    confidence: np.ndarray  # (n_bins,) mean top-label confidence in the bin (NaN if empty)
    accuracy: np.ndarray  # (n_bins,) fraction correct in the bin (NaN if empty)
    count: np.ndarray  # (n_bins,) cases in the bin

    @property
    def ece(self) -> float:
        """Count-weighted mean gap between confidence and accuracy over non-empty bins."""
        total = self.count.sum()
        if total == 0:
            return float("nan")
        used = self.count > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float((gaps * self.count[used]).sum() / total)


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin cases by top-label confidence into ``n_bins`` equal-width bins on ``[0, 1]``."""
    p = as_probability_matrix(probs)
    y = np.asarray(y_true).astype(np.int64).ravel()
    if len(y) != len(p):
        raise MedlearnError(f"{len(y)} labels but {len(p)} rows of probabilities")
    if n_bins < 1:
        raise MedlearnError(f"n_bins must be positive, got {n_bins}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bins are (lo, hi]; a confidence of exactly 0 joins the first bin
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(edges=edges, confidence=mean_conf, accuracy=accuracy, count=count.astype(np.int64))


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: average |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    return reliability_bins(probs, y_true, n_bins).ece


def _as_logit_matrix(logits: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, K)`` float64 logits; a single binary logit ``z`` becomes ``[0, z]`` (softmax = sigmoid)."""
    z = torch.as_tensor(np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits))
    z = z.to(torch.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim == 1:
        z = torch.stack([torch.zeros_like(z), z], dim=1)
    if z.ndim != 2:
        raise MedlearnError(f"logits must have shape (N, K), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise MedlearnError("logits contain NaN or infinite values")
    return z


def apply_temperature(logits: np.ndarray | torch.Tensor, temperature: float) -> np.ndarray:
    """Calibrated class probabilities ``softmax(logits / T)`` as an ``(N, K)`` numpy array."""
    if not temperature > 0:
        raise MedlearnError(f"temperature must be positive, got {temperature}")
    z = _as_logit_matrix(logits)
    return torch.softmax(z / float(temperature), dim=1).numpy()


def fit_temperature(logits: np.ndarray | torch.Tensor, y_true: np.ndarray, max_iter: int = 100) -> float:
    """The ``T > 0`` minimising the negative log-likelihood of ``y_true`` (L-BFGS on ``log T``).

    Fit on *validation* logits, never on the test set that the report evaluates.
    """
    z = _as_logit_matrix(logits)
    y = torch.as_tensor(np.asarray(y_true).astype(np.int64).ravel())
    if len(y) != len(z):
        raise MedlearnError(f"{len(y)} labels but {len(z)} rows of logits")
    if len(y) == 0:
        raise MedlearnError("no validation cases to fit a temperature on")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
    nll = torch.nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nll(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    t = float(log_t.detach().exp())
    # keep T in a sane range: separable data would push it towards 0 (infinitely sharp)
    return float(np.clip(t, 1e-2, 1e2)) if np.isfinite(t) else 1.0


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean ``-log p(true class)``; the quantity temperature scaling minimises."""
    p = as_probability_matrix(probs)
    y = np.asarray(y_true).astype(np.int64).ravel()
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())
