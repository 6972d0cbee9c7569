"""Degradations for enhancement on real MR/CT slices: spec parsing, noise statistics that match the spec,
seeded reproducibility, anti-aliased downsampling, unit-range slices and the training patch pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.apps.enhancement.slices import (
    EnhancementPatchDataset,
    enhancement_samples,
    fixed_pair,
    image_slices,
    load_slices,
    validation_pairs,
)
from medlearn.data.degradation import (
    RandomDegradation,
    crop_to_multiple,
    degrade,
    parse_degradation,
)
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.intensity import unit_range, unit_range_bounds


@pytest.fixture(scope="module")
def brain(shared_data: Path):
    return load(shared_data / "pyradiomics" / "brain1_image.nrrd", modality="MR")


@pytest.fixture(scope="module")
def mr_slice(brain) -> np.ndarray:
    """A real 256x256 brain MR slice in unit range."""
    return unit_range(brain.array[0], "MR")[:, :, 12]


@pytest.mark.parametrize(
    ("text", "kind", "level", "scale"),
    [
        ("gaussian:0.05", "gaussian", 0.05, 1),
        (" Rician:0.1 ", "rician", 0.1, 1),
        ("poisson:500", "poisson", 500.0, 1),
        ("downsample:4", "downsample", 4.0, 4),
    ],
)
def test_specs_parse(text, kind, level, scale):
    spec = parse_degradation(text)
    assert (spec.kind, spec.level, spec.scale) == (kind, level, scale)
    assert parse_degradation(spec.text) == spec


@pytest.mark.parametrize(
    "text", ["gaussian", "gaussian:abc", "gaussian:-0.1", "gaussian:2", "speckle:0.1", "downsample:3", "poisson:0"]
)
def test_bad_specs_name_the_text(text):
    with pytest.raises(MedlearnError, match=repr(text).replace("[", r"\[")):
        parse_degradation(text)


def test_gaussian_residual_has_the_spec_sigma(mr_slice):
    noisy = degrade(mr_slice, parse_degradation("gaussian:0.05"), seed=3)
    residual = noisy - mr_slice
    assert abs(float(residual.std()) - 0.05) < 0.05 * 0.03
    assert abs(float(residual.mean())) < 0.002


def test_rician_noise_is_sigma_on_bright_tissue_and_a_rayleigh_floor_on_air(mr_slice):
    sigma = 0.05
    noisy = degrade(mr_slice, parse_degradation(f"rician:{sigma}"), seed=4)
    bright, air = mr_slice > 0.5, mr_slice == 0
    assert bright.sum() > 1000 and air.sum() > 1000
    assert abs(float((noisy - mr_slice)[bright].std()) - sigma) < sigma * 0.1
    assert abs(float(noisy[air].mean()) - sigma * np.sqrt(np.pi / 2)) < sigma * 0.1
    assert noisy.min() >= 0


def test_poisson_variance_follows_intensity_over_dose(shared_data: Path):
    ct = load(shared_data / "pyradiomics" / "lung1_image.nrrd", modality="CT")
    clean = unit_range(ct.array[0], "CT")[:, :, 24]
    dose = 400
    noisy = degrade(clean, parse_degradation(f"poisson:{dose}"), seed=5)
    for low, high in ((0.2, 0.4), (0.6, 0.9)):
        band = (clean > low) & (clean < high)
        expected = float(np.sqrt(clean[band].mean() / dose))
        assert abs(float((noisy - clean)[band].std()) - expected) < expected * 0.1


def test_a_seed_reproduces_the_degradation(mr_slice):
    spec = parse_degradation("gaussian:0.05")
    first, again, other = (degrade(mr_slice, spec, seed=s) for s in (7, 7, 8))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    transform = RandomDegradation(spec)
    a = transform(mr_slice, np.random.default_rng(11))
    b = transform(mr_slice, np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert transform.sample(np.random.default_rng(11)) == transform.sample(np.random.default_rng(11))


def test_downsampling_is_anti_aliased_and_keeps_brightness(mr_slice):
    spec = parse_degradation("downsample:4")
    small = degrade(mr_slice, spec)
    assert small.shape == (64, 64)
    assert abs(float(small.mean()) - float(mr_slice.mean())) < 0.01
    naive = mr_slice[::4, ::4]  # aliasing keeps single-pixel noise; the filtered one is smoother
    assert np.abs(np.diff(small, axis=0)).mean() < np.abs(np.diff(naive, axis=0)).mean()
    assert crop_to_multiple(np.zeros((10, 7)), 4).shape == (8, 4)


def test_unit_range_by_modality(brain, shared_data: Path):
    unit = unit_range(brain.array[0], "MR")
    assert unit.min() == 0 and unit.max() == 1
    low, span = unit_range_bounds(brain.array[0], "MR")
    inside = (unit > 0) & (unit < 1)
    assert np.allclose(brain.array[0][inside], low + unit[inside] * span, atol=1e-2 * span)
    assert unit_range_bounds(np.zeros(3), "CT") == (-160.0, 400.0)  # the abdomen window, HU


def test_volume_slices_follow_the_thickest_axis_and_skip_empty_ones(brain):
    import dataclasses

    array = brain.array.copy()
    array[..., 0] = 0  # a blank slice
    slices = image_slices(dataclasses.replace(brain, array=array), min_content=0.3)
    assert {s.axis for s in slices} == {2}  # 6.5 mm between slices
    assert all(s.image.shape == (256, 256) for s in slices)
    # the blank slice and the top of the head (under 30% of the slice above 5% of the range) are skipped
    assert [s.index for s in slices] == list(range(1, 23))
    assert all(float((s.image > 0.05).mean()) >= 0.3 for s in slices)


def test_patch_pairs_are_reproducible_and_match_the_spec(mr_slice, brain):
    slices = image_slices(brain)
    spec = parse_degradation("downsample:2")
    dataset = EnhancementPatchDataset(slices, spec, patch_size=48, seed=1)
    degraded, clean = dataset[5]
    assert degraded.shape == (1, 24, 24) and clean.shape == (1, 48, 48)
    again, _ = dataset[5]
    assert np.array_equal(degraded.numpy(), again.numpy())
    pairs = validation_pairs(slices, spec, count=3, max_size=100, seed=0)
    assert len(pairs) == 3 and pairs[0][1].shape == (1, 1, 100, 100) and pairs[0][0].shape == (1, 1, 50, 50)
    first, _ = fixed_pair(slices[0], parse_degradation("gaussian:0.1"), seed=9)
    second, _ = fixed_pair(slices[0], parse_degradation("gaussian:0.1"), seed=9)
    assert np.array_equal(first, second)


def test_an_image_smaller_than_the_crop_is_refused_by_name(tmp_path: Path, brain):
    from medlearn.io import save
    from medlearn.io.geometry import image_from_affine

    small = save(image_from_affine(brain.array[:, :40, :40, 12], np.eye(4), modality="MR"), tmp_path / "small.nii.gz")
    (tmp_path / "files.csv").write_text("path\nsmall.nii.gz\n")
    samples = enhancement_samples(tmp_path / "files.csv")
    assert samples[0].path == small
    with pytest.raises(MedlearnError, match="small.nii.gz"):
        load_slices(samples, min_size=64)


def test_a_csv_without_a_path_column_is_refused(tmp_path: Path):
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(MedlearnError, match="'path'"):
        enhancement_samples(tmp_path / "bad.csv")
