"""Fingerprint and plan on the real volumes and images of ../shared/data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlearn.cli.main import main
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.planning.fingerprint import CaseFingerprint, DatasetFingerprint, fingerprint
from medlearn.planning.plan import SegmentationPlan, make_plan


def _pairs(shared: Path, *cases: str) -> list[Sample]:
    root = shared / "pyradiomics"
    return [Sample(root / f"{c}_image.nrrd", target=root / f"{c}_label.nrrd") for c in cases]


def test_anisotropic_mr_volumes_are_planned_slice_by_slice(shared_data):
    fp = fingerprint(_pairs(shared_data, "brain1", "brain2"))
    assert [c.shape for c in fp.cases] == [(256, 256, 25), (256, 256, 23)]
    assert fp.cases[0].label_voxels[1] == 4137 and fp.cases[1].label_voxels[1] == 453
    assert fp.class_frequencies()[1] == pytest.approx((4137 + 453) / (256 * 256 * 48))
    plan = make_plan(fp)
    assert plan.spatial_dims == 2 and plan.slice_axis == 2  # 6.5 mm slices, 0.78 mm in plane
    assert plan.target_spacing == pytest.approx([0.78125, 0.78125, 6.5])
    assert all(side % 2**plan.depth == 0 for side in plan.patch_size)
    assert plan.labels == [0, 1]
    # two subjects scanned with a different gain (brain2 about half as bright): their levels agree only after
    # each is z-scored on its own; 94% of the voxels are non-zero, so no body mask to respect
    assert plan.normalization == "zscore" and plan.normalization_params == {}
    assert "scales differ" in plan.normalization_reason


def test_ct_gets_foreground_clipping_and_isotropic_data_a_3d_plan(shared_data):
    fp = fingerprint(_pairs(shared_data, "lung1", "lung2"), modality="CT")
    plan = make_plan(fp)
    params = plan.normalization_params
    assert plan.normalization == "ct"
    assert params["clip_low"] < params["mean"] < params["clip_high"]
    assert -1100 < params["clip_low"] < params["clip_high"] < 3000  # Hounsfield units


def test_isotropic_volume_gets_a_3d_patch_within_the_cpu_budget(shared_data):
    root = shared_data / "mni152"
    t1 = root / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    gm = root / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
    plan = make_plan(fingerprint([Sample(t1, target=gm)]))
    assert plan.spatial_dims == 3 and plan.slice_axis is None
    assert plan.base_channels == 16  # 3D: half nnU-Net's width, the CPU budget's choice
    written = plan.to_dict()
    del written["base_channels"]  # a plan.json written before the plan chose the width
    assert SegmentationPlan(**written).base_channels == 16  # what those runs were trained with
    assert plan.normalization == "dataset"  # one uint8 template: its own scale is kept
    params = plan.normalization_params  # ... measured inside the head: the zeros around it stay zero
    assert params["nonzero"] and 0 < params["clip_low"][0] < 100 < 200 < params["clip_high"][0]
    assert "one training case" in plan.normalization_reason
    assert np.prod(plan.patch_size) <= 64**3
    assert all(side % 2**plan.depth == 0 for side in plan.patch_size)


def test_mask_with_other_geometry_is_an_error_naming_it(tmp_path: Path):
    image, mask = tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), image)
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), shifted), mask)
    with pytest.raises(MedlearnError, match="geometry") as error:
        fingerprint([Sample(image, target=mask)])
    assert "mask.nii.gz" in str(error.value)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 5), np.uint8), np.eye(4)), mask)
    with pytest.raises(MedlearnError, match="shape"):
        fingerprint([Sample(image, target=mask)])


def test_overrides_are_checked(shared_data):
    plan = make_plan(fingerprint(_pairs(shared_data, "breast1")))
    assert plan.with_overrides({"batch_size": 3}).batch_size == 3
    with pytest.raises(MedlearnError, match="unknown plan settings"):
        plan.with_overrides({"batchsize": 3})
    with pytest.raises(MedlearnError, match="multiple"):
        plan.with_overrides({"patch_size": [30] * plan.spatial_dims})


def test_segment_plan_cli_on_2d_nuclei(shared_data, tmp_path: Path):
    manifest = tmp_path / "pairs.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask"])
        writer.writerow([shared_data / "nuclei-dsb2018/img2d.tif", shared_data / "nuclei-dsb2018/mask2d.tif"])
    out = tmp_path / "plan.json"
    assert main(["segment", "plan", str(manifest), "--json", str(out), "--set", "batch_size=8"]) == 0
    written = json.loads(out.read_text())
    assert written["plan"]["spatial_dims"] == 2 and written["plan"]["batch_size"] == 8
    patch = written["plan"]["patch_size"]
    assert patch[0] == patch[1] and 128 < patch[0] <= 256  # 512x512 shrunk to the 2D budget of 256^2 pixels
    assert len(written["fingerprint"]["labels"]) > 2  # instance ids of the nuclei
    assert main(["segment", "plan", str(manifest), "--set", "nonsense"]) == 2


def test_pairs_from_folder_match_by_name(shared_data, tmp_path: Path):
    from medlearn.data.sources import load_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    nuclei = shared_data / "nuclei-dsb2018"
    (tmp_path / "images" / "a.tif").write_bytes((nuclei / "img2d.tif").read_bytes())
    (tmp_path / "masks" / "a.tif").write_bytes((nuclei / "mask2d.tif").read_bytes())
    (pair,) = load_pairs(tmp_path)
    assert pair.path.name == "a.tif" and pair.target == tmp_path / "masks" / "a.tif"
    (tmp_path / "images" / "b.tif").write_bytes((nuclei / "img2d.tif").read_bytes())
    with pytest.raises(MedlearnError, match="no mask of the same name"):
        load_pairs(tmp_path)


def _image_fingerprint(cases: int, side: int) -> DatasetFingerprint:
    case = CaseFingerprint(
        source="tile.png", shape=(side, side), spacing=(1.0, 1.0), channels=1, modality="OT", label_voxels={1: 10}
    )
    stats = {"mean": 0.0, "std": 1.0, "percentile_00_5": -1.0, "percentile_99_5": 1.0}
    scale = {"clip_low": [-1.0], "clip_high": [1.0], "mean": [0.0], "std": [1.0]}
    return DatasetFingerprint(
        cases=[case] * cases,
        spatial_dims=2,
        modality="OT",
        foreground_intensity=stats,
        labels=[0, 1],
        dataset_scale=scale,
    )


def test_2d_batch_covers_at_most_a_twentieth_of_a_small_dataset():
    small = make_plan(_image_fingerprint(10, 128))  # 10 tiles: a batch of 32 would be 3 passes over the data
    assert small.patch_size == [128, 128] and small.batch_size == 4 and small.base_channels == 32
    medium = make_plan(_image_fingerprint(200, 128))  # 5% of 200 tiles = 10 patches
    assert medium.batch_size == 10
    large = make_plan(_image_fingerprint(5000, 128))  # memory bound: 2**20 pixels = 64 patches, capped at 32
    assert large.batch_size == 32
