"""Learned registration: exact conventions (a constant velocity integrates to a translation; a network's voxel
displacement becomes the right world displacement, ITK transform and mapped points), pairs that are a function of
their index, a loss that prefers the true deformation, and register train / pair --run / evaluate RUN end to end
on deformed MNI152 volumes with their label maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medlearn.apps.registration.cohort import Volume, network_grid
from medlearn.apps.registration.learned import LearnedRegistration
from medlearn.apps.registration.pairs import PairDataset, make_pair, sample_pair_parameters, synthetic_displacement
from medlearn.apps.registration.settings import RegistrationSettings
from medlearn.apps.registration.task import RegistrationTask
from medlearn.cli.main import main
from medlearn.data.deformation import RandomDeformation
from medlearn.data.landmark_set import LandmarkSetSpec, TemplateLabels, make_landmark_set, read_template_landmarks
from medlearn.errors import MedlearnError
from medlearn.io import load, resample_to_spacing
from medlearn.io.geometry import image_from_affine
from medlearn.io.itk import FLIP, compose, displacement_field, field_transform
from medlearn.models import create_model
from medlearn.models.registration import VelocityFieldNet
from medlearn.utils.atomic import write_csv_atomic

MNI = "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GREY = "mni152/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"


def test_a_constant_velocity_integrates_to_the_same_translation_and_warps_by_it():
    model = create_model("voxelmorph", spatial_dims=2)
    velocity = torch.zeros(1, 2, 32, 32)
    velocity[:, 0] = 2.0  # two voxels along array axis 0
    ddf = model.to_displacement(velocity)
    torch.testing.assert_close(ddf[0, :, 8:24, 8:24], velocity[0, :, 8:24, 8:24], atol=1e-4, rtol=0)
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 12, 10] = 1.0
    warped = model.warp(image, ddf)
    assert warped[0, 0, 10, 10] == pytest.approx(1.0, abs=1e-4)  # fixed voxel 10 takes moving voxel 12


def test_an_untrained_model_is_the_identity():
    model = create_model("voxelmorph", spatial_dims=3)
    assert model(torch.rand(1, 2, 16, 16, 16)).abs().max() < 1e-2


def test_field_transform_is_the_inverse_of_displacement_field_and_compose_keeps_the_order():
    affine = np.diag([2.0, -3.0, 1.5, 1.0])  # a flipped axis, anisotropic: conventions must hold anyway
    affine[:3, 3] = [10, 20, -5]
    field = image_from_affine(np.random.default_rng(0).normal(size=(3, 6, 5, 4)).astype(np.float32), affine)
    back = displacement_field(field_transform(field), field)
    np.testing.assert_allclose(back.array, field.array, atol=1e-5)
    shift, scale = sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), sitk.ScaleTransform(3, (2.0, 2.0, 2.0))
    assert compose(shift, scale).TransformPoint((1.0, 1.0, 1.0)) == pytest.approx((4.0, 2.0, 2.0))  # shift first


class ConstantShift(VelocityFieldNet):
    """A 'network' whose answer is known: every fixed voxel takes the moving value 3 voxels along array axis 1."""

    def velocity(self, pair: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(pair.shape[0], self.spatial_dims, *pair.shape[2:])
        out[:, 1] = 3.0
        return out


def test_a_voxel_displacement_becomes_the_world_displacement_of_the_fixed_grid(shared_data: Path):
    fixed = resample_to_spacing(load(shared_data / MNI), 8.0)
    settings = RegistrationSettings(init="none", grid_spacing=4.0)
    learned = LearnedRegistration(ConstantShift(3, integration_steps=0), settings, Path("constant"))
    result = learned(fixed, fixed)
    grid = network_grid(fixed, 4.0)
    expected = grid.affine[:3, :3] @ np.array([0.0, 3.0, 0.0])  # 3 grid steps along axis 1, in RAS mm
    inside = np.array(fixed.affine[:3, :3] @ (np.array(fixed.spatial_shape) / 2) + fixed.affine[:3, 3])
    moved = np.array(result.transform.TransformPoint(tuple(inside @ FLIP))) @ FLIP
    np.testing.assert_allclose(moved - inside, expected, atol=1e-6)
    assert abs(expected[1]) == pytest.approx(12.0)  # 3 voxels of 4 mm along y
    with pytest.raises(MedlearnError, match="mask"):
        learned(fixed, fixed, fixed)


def _volumes(count: int = 3, shape=(16, 16, 16)) -> list[Volume]:
    rng = np.random.default_rng(0)
    volumes = []
    for _ in range(count):
        labels = np.zeros(shape, np.int64)
        labels[4:12, 4:12, 4:12] = 1
        image = (labels * 0.6 + rng.random(shape) * 0.1).astype(np.float32)[None]
        volumes.append(Volume("case", image, labels))
    return volumes


def test_training_pairs_are_a_function_of_their_index_and_labels_move_with_images():
    settings = RegistrationSettings(synthetic_share=1.0, synthetic_mm=6.0, contrast="same")
    dataset = PairDataset(_volumes(), settings, spacing=2.0, seed=4)
    first, again = dataset[7], dataset[7]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    pair, fixed_labels, moving_labels = first
    assert not torch.equal(pair[0], pair[1])  # deformed
    inside = moving_labels[0] == 1
    assert pair[1][inside].mean() > pair[1][~inside].mean() + 0.4  # the warped image and labels agree
    rng = np.random.default_rng(0)
    contrast = sample_pair_parameters(
        rng, 3, (16, 16, 16), synthetic_share=0.0, synthetic_voxels=1.0, random_contrast=True
    )
    assert contrast.moving is not None and contrast.moving != contrast.fixed


def test_the_loss_prefers_the_true_deformation_to_none():
    """A synthetic pair's moving image is the fixed one sampled at ``p + ddf(p)``: with the roles swapped, ``ddf``
    is the exact answer, and image, smoothness and label terms together must score it better than no warp."""
    volumes = _volumes(1)
    parameters = sample_pair_parameters(
        np.random.default_rng(1), 1, (16, 16, 16), synthetic_share=1.0, synthetic_voxels=3.0, random_contrast=False
    )
    pair, fixed_labels, moving_labels = (t[None] for t in make_pair(volumes, parameters))
    swapped = torch.cat([pair[:, 1:], pair[:, :1]], dim=1)
    ddf = synthetic_displacement(parameters.velocity, (16, 16, 16))
    model = create_model("voxelmorph", spatial_dims=3)
    task = RegistrationTask(RegistrationSettings(), 3, num_labels=2)
    loss_true, parts = task.objective(model, swapped, ddf, moving_labels, fixed_labels)
    loss_none, _ = task.objective(model, swapped, torch.zeros_like(ddf), moving_labels, fixed_labels)
    assert loss_true < loss_none and {"similarity", "smoothness", "label_dice_loss"} <= set(parts)


@pytest.fixture(scope="module")
def cohort(shared_data: Path, tmp_path_factory) -> Path:
    """Six deformed MNI152 volumes at 6 mm with grey-matter labels and landmarks, and a pairs CSV."""
    folder = tmp_path_factory.mktemp("register-cohort")
    template = load(shared_data / MNI)
    grey = load(shared_data / GREY).array[0]
    labels = (grey > 0.5 * grey.max()).astype(np.uint8)[None]
    structures = TemplateLabels(image_from_affine(labels, template.affine), {1: "grey"})
    spec = LandmarkSetSpec(count=6, spacing_mm=6.0, seed=2, deformation=RandomDeformation(elastic_mm=3.0))
    make_landmark_set(template, folder, spec, read_template_landmarks(None, template), structures)
    rows = [(f"images/case_{k:04d}.nii.gz", f"labels/case_{k:04d}.nii.gz") for k in range(1, 6)]
    write_csv_atomic(folder / "cohort.csv", ["path", "labels"], rows)
    pairs = [
        ("images/case_0000.nii.gz", f"images/case_{k:04d}.nii.gz", "labels/case_0000.nii.gz",
         f"labels/case_{k:04d}.nii.gz", "landmarks/case_0000.fcsv", f"landmarks/case_{k:04d}.fcsv")
        for k in (1, 2)
    ]  # fmt: skip
    columns = ["fixed", "moving", "fixed_labels", "moving_labels", "fixed_points", "moving_points"]
    write_csv_atomic(folder / "pairs.csv", columns, pairs)
    return folder


def test_register_train_pair_and_evaluate_from_the_cli(cohort: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    train = ["register", "train", "--data", str(cohort / "cohort.csv"), "--out", str(run), "--epochs", "2"]
    assert main([*train, "--set", "batches_per_epoch=3", "--set", "val_pairs=2", "--quiet"]) == 0
    assert "validation dice" in capsys.readouterr().out
    config = (run / "config.yaml").read_text()
    assert "grid_spacing: 6.0" in config and "labelled: true" in config
    scores = json.loads((run / "validation.json").read_text())
    assert scores["monitor"] == "dice" and 0.0 < scores["best"]["dice"] <= 1.0
    out = tmp_path / "pair"
    pair = ["register", "pair", "--fixed", str(cohort / "images/case_0000.nii.gz")]
    pair += ["--moving", str(cohort / "images/case_0001.nii.gz"), "--run", str(run), "--out", str(out)]
    assert main([*pair, "--refine-steps", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"].startswith("learned (run) + 3 refinement steps")
    assert metrics["registered"]["ncc"] > metrics["identity"]["ncc"]  # at least the affine pre-alignment works
    field = load(out / "displacement.nii.gz")
    transform = sitk.ReadTransform(str(out / "transform.h5"))
    np.testing.assert_allclose(displacement_field(transform, field).array, field.array, atol=1e-3)
    summary_path = tmp_path / "m.json"
    command = ["register", "evaluate", str(run), "--data", str(cohort / "pairs.csv"), "--json", str(summary_path)]
    assert main([*command, "--baseline", "affine"]) == 0
    summary = json.loads(summary_path.read_text())
    for key in ("dice", "hd95_mm", "tre_mm", "folding_fraction", "sdlogj", "seconds_per_pair", "baseline"):
        assert key in summary
    assert set(summary["baseline"]) == {"identity", "affine"}
    assert summary["dice"] > summary["baseline"]["identity"]["dice"]


def test_register_train_refuses_a_cohort_with_labels_for_some_images_only(cohort: Path, tmp_path: Path, capsys):
    partial = tmp_path / "partial.csv"
    partial.write_text(
        f"path,labels\n{cohort}/images/case_0001.nii.gz,{cohort}/labels/case_0001.nii.gz\n"
        f"{cohort}/images/case_0002.nii.gz,\n"
    )
    assert main(["register", "train", "--data", str(partial), "--out", str(tmp_path / "r"), "--epochs", "1"]) != 0
    assert "label maps" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
