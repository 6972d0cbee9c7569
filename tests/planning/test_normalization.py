"""The fingerprint chooses the normalisation from the data, and says why (synthetic cases of each kind)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlearn.cli.main import main
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io.intensity import apply_normalization
from medlearn.planning.fingerprint import fingerprint
from medlearn.planning.plan import make_plan

SIDE = 96


def _blobs(share: float, seed: int) -> np.ndarray:
    """A binary mask of round blobs covering about ``share`` of a SIDE x SIDE image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    mask = np.zeros((SIDE, SIDE), bool)
    while mask.mean() < share:
        cy, cx = rng.integers(6, SIDE - 6, size=2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 5**2
    return mask


def _write_cases(folder: Path, shares, *, gains=None, dtypes=None, background=200.0, contrast=400.0) -> list[Sample]:
    """Microscopy-like cases: noisy background at ``background``, blobs ``contrast`` brighter; case i's intensities
    multiplied by ``gains[i]`` (an acquisition's gain) and stored as ``dtypes[i]``."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, share in enumerate(shares):
        rng = np.random.default_rng(100 + i)
        mask = _blobs(share, seed=i)
        image = background + contrast * mask + rng.normal(0, 25, mask.shape)
        image *= gains[i] if gains else 1.0
        dtype = dtypes[i] if dtypes else np.uint16
        if dtype == np.uint8:
            image = image / image.max() * 250
        Image.fromarray(np.clip(image, 0, None).astype(dtype)).save(folder / f"case{i}.png")
        Image.fromarray(mask.astype(np.uint8)).save(folder / f"case{i}_mask.png")
        samples.append(Sample(folder / f"case{i}.png", target=folder / f"case{i}_mask.png"))
    return samples


def test_one_scale_with_a_varying_foreground_share_gets_the_dataset_scheme(tmp_path):
    samples = _write_cases(tmp_path, [0.02, 0.05, 0.15, 0.3, 0.45])
    plan = make_plan(fingerprint(samples))
    assert plan.normalization == "dataset"
    assert "share one intensity scale" in plan.normalization_reason and "varies" in plan.normalization_reason
    params = plan.normalization_params
    assert params["clip_low"][0] < 200 < 600 < params["clip_high"][0]  # background and blobs inside the clip
    # a sparse and a dense case: their backgrounds (and their blobs) land on the same normalised values,
    # which a per-image z-score does not give
    sparse, dense = (np.asarray(Image.open(s.path), np.float32)[None] for s in (samples[0], samples[-1]))
    masks = [np.asarray(Image.open(s.target), bool) for s in (samples[0], samples[-1])]
    for scheme, params, agree in (("dataset", plan.normalization_params, True), ("zscore", {}, False)):
        levels = [
            np.median(apply_normalization(x, scheme, params)[0][~m])
            for x, m in zip((sparse, dense), masks, strict=True)
        ]
        assert (abs(levels[0] - levels[1]) < 0.1) == agree, scheme


def test_acquisitions_with_different_gains_get_a_per_image_zscore(tmp_path):
    samples = _write_cases(tmp_path, [0.1, 0.12, 0.1, 0.14], gains=[1.0, 2.5, 0.6, 1.8])
    plan = make_plan(fingerprint(samples))
    assert plan.normalization == "zscore" and "scales differ" in plan.normalization_reason


def test_different_storage_types_get_a_per_image_zscore_and_a_warning_if_shares_vary(tmp_path):
    samples = _write_cases(tmp_path, [0.02, 0.3, 0.1], dtypes=[np.uint8, np.uint16, np.uint16])
    plan = make_plan(fingerprint(samples))
    assert plan.normalization == "zscore"
    assert "stored as uint16 and uint8" in plan.normalization_reason
    assert "foreground share also varies" in plan.normalization_warning


def test_ct_keeps_its_hounsfield_scheme(tmp_path):
    samples = _write_cases(tmp_path, [0.1, 0.3])
    plan = make_plan(fingerprint(samples, modality="CT"))
    assert plan.normalization == "ct" and "Hounsfield" in plan.normalization_reason


@pytest.mark.parametrize(("modality", "scheme"), [("MR", "zscore"), (None, "dataset")])
def test_a_single_case_follows_the_modality(tmp_path, modality, scheme):
    plan = make_plan(fingerprint(_write_cases(tmp_path, [0.2]), modality=modality))
    assert plan.normalization == scheme and "one training case" in plan.normalization_reason


def test_an_override_wins_and_the_reason_keeps_what_the_data_suggested(tmp_path):
    fp = fingerprint(_write_cases(tmp_path, [0.02, 0.3, 0.1]))
    plan = make_plan(fp, {"normalization": "zscore", "batch_size": 5})
    assert plan.normalization == "zscore" and plan.batch_size == 5
    assert plan.normalization_reason.startswith("set by the user (the data suggested dataset")
    with pytest.raises(MedlearnError, match="unknown normalization 'minmax'; choose one of ct, dataset, zscore"):
        make_plan(fp, {"normalization": "minmax"})


def test_segment_plan_prints_the_choice_and_accepts_a_bare_word_override(tmp_path, capsys):
    _write_cases(tmp_path / "images_src", [0.02, 0.3, 0.1])
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        (tmp_path / "images_src" / f"case{i}.png").rename(tmp_path / "images" / f"case{i}.png")
        (tmp_path / "images_src" / f"case{i}_mask.png").rename(tmp_path / "masks" / f"case{i}.png")
    assert main(["segment", "plan", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dataset" in out and "share one intensity" in out
    assert main(["segment", "plan", str(tmp_path), "--set", "normalization=zscore"]) == 0
    assert "set by the user" in capsys.readouterr().out
    assert main(["segment", "plan", str(tmp_path), "--set", "normalization=minmax"]) == 2
    assert "choose one of ct, dataset, zscore" in capsys.readouterr().err


def test_dataset_scheme_normalises_each_channel_with_its_own_parameters():
    array = np.stack([np.full((4, 4), 10.0), np.full((4, 4), 1000.0)])
    params = {"clip_low": [0.0, 0.0], "clip_high": [20.0, 500.0], "mean": [5.0, 250.0], "std": [5.0, 125.0]}
    out = apply_normalization(array, "dataset", params)
    assert out.dtype == np.float32 and np.allclose(out[0], 1.0) and np.allclose(out[1], 2.0)  # 1000 clipped to 500
    assert array[1, 0, 0] == 1000.0  # the input is not modified


def test_a_case_that_is_all_foreground_does_not_break_the_choice():
    from medlearn.planning.normalization import CaseIntensity, threshold_separation

    quantiles = [list(np.linspace(100, 200, 41))]
    inside = CaseIntensity("uint16", "OT", 1.0, [150.0], [0.0], foreground_quantiles=quantiles)
    assert threshold_separation([inside], zscored=False) == 0.0


def test_a_zero_background_is_left_out_of_the_dataset_statistics_and_stays_zero(tmp_path):
    """Template-like MR: a head of tissue inside exact zeros. Pooling the zeros would halve the mean and double the
    spread (the MNI152 3D U-Net lost 0.05-0.16 validation Dice to that); the statistics come from the non-zero
    voxels, the background stays 0 and pads with 0."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        image = np.zeros((SIDE, SIDE), np.float32)
        head = _blobs(0.3, seed=i)
        image[head] = rng.normal(100 + 40 * (rng.random(head.sum()) > 0.5), 5)
        mask = (image > 120).astype(np.uint8)
        Image.fromarray(image.astype(np.uint16)).save(tmp_path / f"head{i}.png")
        Image.fromarray(mask).save(tmp_path / f"head{i}_mask.png")
        samples.append(Sample(tmp_path / f"head{i}.png", target=tmp_path / f"head{i}_mask.png"))
    plan = make_plan(fingerprint(samples))
    params = plan.normalization_params
    assert plan.normalization == "dataset" and params["nonzero"] is True
    assert "zero background" in plan.normalization_reason
    assert 110 < params["mean"][0] < 130 and params["clip_low"][0] > 80  # the tissue's statistics, not the zeros'
    out = apply_normalization(np.asarray(Image.open(samples[0].path), np.float32)[None], "dataset", params)
    assert np.all(out[0][~_blobs(0.3, seed=0)] == 0.0)
    assert plan.padding_values == (0.0,)
