"""PSNR/SSIM on known cases and against scikit-image, and the classical enhancement baselines on a real
MR slice: each one must beat the degraded input it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.data.degradation import degrade, parse_degradation
from medlearn.errors import MedlearnError
from medlearn.evaluation.classical_enhancement import bicubic, classical_baselines, estimate_noise_sigma
from medlearn.evaluation.image_quality import mae, psnr, quality, ssim
from medlearn.io.intensity import unit_range


@pytest.fixture(scope="module")
def mr_slice(shared_data: Path) -> np.ndarray:
    from medlearn.io import load

    brain = load(shared_data / "pyradiomics" / "brain1_image.nrrd", modality="MR")
    return unit_range(brain.array[0], "MR")[64:192, 64:192, 12]


def test_psnr_of_a_known_error():
    reference = np.zeros((32, 32))
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0)
    assert psnr(reference + 0.01, reference) == pytest.approx(40.0)
    assert psnr(reference + 0.1, reference, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2))
    assert psnr(reference, reference) == float("inf")
    assert mae(reference + 0.1, reference) == pytest.approx(0.1)


def test_ssim_is_one_for_identical_images_and_drops_with_noise(mr_slice):
    assert ssim(mr_slice, mr_slice) == pytest.approx(1.0)
    noisy = degrade(mr_slice, parse_degradation("gaussian:0.1"), seed=0)
    more = degrade(mr_slice, parse_degradation("gaussian:0.2"), seed=0)
    assert 0 < ssim(more, mr_slice) < ssim(noisy, mr_slice) < 1
    assert ssim(mr_slice[None], mr_slice[None]) == pytest.approx(1.0)  # channel-first grey


def test_metrics_agree_with_scikit_image(mr_slice):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    noisy = degrade(mr_slice, parse_degradation("gaussian:0.05"), seed=1)
    assert psnr(noisy, mr_slice) == pytest.approx(peak_signal_noise_ratio(mr_slice, noisy, data_range=1.0))
    reference = structural_similarity(
        noisy, mr_slice, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(noisy, mr_slice) == pytest.approx(reference)
    assert set(quality(noisy, mr_slice)) == {"psnr", "ssim"}


def test_small_images_use_a_smaller_window_and_bad_pairs_are_refused():
    rng = np.random.default_rng(0)
    image = rng.random((5, 6))
    assert ssim(image, image) == pytest.approx(1.0)
    with pytest.raises(MedlearnError, match="shapes"):
        psnr(image, image[:4])
    with pytest.raises(MedlearnError, match="at least 3"):
        ssim(image[:2], image[:2])


@pytest.mark.parametrize("noise", ["gaussian:0.08", "rician:0.08", "poisson:150"])
def test_every_denoising_baseline_beats_the_noisy_input(mr_slice, noise):
    spec = parse_degradation(noise)
    noisy = degrade(mr_slice, spec, seed=2)
    outputs = classical_baselines(noisy, spec)
    assert set(outputs) == {"nl_means", "bilateral", "tv"}
    before = psnr(np.clip(noisy, 0, 1), mr_slice)
    for name, restored in outputs.items():
        assert restored.shape == mr_slice.shape and restored.dtype == np.float32
        assert psnr(np.clip(restored, 0, 1), mr_slice) > before + 1.0, name


def test_bicubic_baseline_and_noise_estimate(mr_slice):
    spec = parse_degradation("downsample:2")
    small = degrade(mr_slice, spec)
    outputs = classical_baselines(small, spec)
    assert set(outputs) == {"bicubic"} and outputs["bicubic"].shape == mr_slice.shape
    nearest = np.kron(small, np.ones((2, 2)))
    assert psnr(outputs["bicubic"], mr_slice) > psnr(nearest, mr_slice)
    assert bicubic(small, (128, 128)).shape == (128, 128)
    noisy = degrade(mr_slice, parse_degradation("gaussian:0.05"), seed=3)
    assert estimate_noise_sigma(noisy) == pytest.approx(0.05, rel=0.2)
