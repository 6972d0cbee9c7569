"""Synthetic deformations: points are moved exactly where the image content goes, fields never fold, contrast
changes keep the background; the landmark-set command on the real MNI152 template writes marked images,
Slicer landmarks and named boxes that the readers take back."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medlearn.apps.localisation.boxes import read_boxes
from medlearn.cli.main import main
from medlearn.data.deformation import (
    MIN_JACOBIAN,
    Contrast,
    Deformation,
    RandomDeformation,
    jacobian_determinant,
)
from medlearn.data.landmark_set import MNI152_LANDMARKS
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.io.geometry import image_from_affine, world_to_voxel
from medlearn.io.markups import read_fcsv, write_fcsv
from medlearn.io.warp import voxel_grid_world

MNI = "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _grid(size: int = 20, spacing: float = 2.0) -> object:
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-20.0, -15.0, 5.0]
    return image_from_affine(np.ones((1, size, size, size), np.float32), affine)


def test_points_land_where_the_image_content_goes() -> None:
    grid = _grid()
    deformation = RandomDeformation(rotation_deg=10, scale=0.1, translation_mm=4, elastic_mm=1.5).sample(
        grid, np.random.default_rng(1)
    )
    # an image whose values are the world coordinates themselves: the deformed image holds, at each voxel, the
    # template position it came from, so at a mapped point it must read back the template point
    coordinates = image_from_affine(voxel_grid_world(grid.spatial_shape, grid.affine).astype(np.float32), grid.affine)
    deformed = deformation.apply(coordinates)
    template_points = np.array([[-5.0, 2.0, 20.0], [3.0, 8.0, 17.5], [-10.0, -2.0, 26.0]])
    mapped = deformation.map_points(template_points)
    assert np.abs(mapped - template_points).max() > 0.5  # the points did move
    for point, where in zip(template_points, mapped, strict=True):
        voxel = world_to_voxel(deformed, where)
        lower = np.floor(voxel).astype(int)
        weights = voxel - lower
        value = np.zeros(3)
        for corner in range(8):  # trilinear read-back at the mapped position
            offset = np.array([(corner >> a) & 1 for a in range(3)])
            weight = np.prod(np.where(offset, weights, 1 - weights))
            value += weight * deformed.array[(slice(None), *(lower + offset))]
        np.testing.assert_allclose(value, point, atol=2e-3)


def test_drawn_fields_do_not_fold_and_a_folding_one_is_refused() -> None:
    grid = _grid()
    rng = np.random.default_rng(0)
    for _ in range(3):
        deformation = RandomDeformation().sample(grid, rng)
        assert deformation.min_jacobian() > MIN_JACOBIAN
    with pytest.raises(MedlearnError, match="no deformation without folding"):
        RandomDeformation(elastic_mm=30.0, control_spacing_mm=4.0, max_draws=2).sample(grid, rng)


def test_jacobian_of_a_known_field() -> None:
    grid = _grid(size=8, spacing=1.5)
    world = voxel_grid_world(grid.spatial_shape, grid.affine)
    # u(x) = 0.25 x along the first axis: x -> 1.25 x, determinant 1.25 everywhere
    field = np.zeros_like(world)
    field[0] = 0.25 * world[0]
    determinant = jacobian_determinant(image_from_affine(field.astype(np.float32), grid.affine))
    np.testing.assert_allclose(determinant, 1.25, atol=1e-5)
    # a folding point is refused rather than mapped to a wrong place
    field[0] = -1.5 * world[0]
    folded = Deformation(image_from_affine(field.astype(np.float32), grid.affine))
    assert folded.min_jacobian() < 0
    with pytest.raises(MedlearnError, match="did not converge|maps outside"):
        folded.map_points(np.array([[-10.0, -10.0, 7.0]]))


def test_contrast_inversion_reverses_the_foreground_and_keeps_the_background() -> None:
    values = np.zeros((1, 6, 6, 6), np.float32)
    values[0, 1:5, 1:5, 1:5] = np.linspace(100, 400, 64).reshape(4, 4, 4)
    image = image_from_affine(values, np.eye(4))
    changed = Contrast(gamma=0.8, invert=True).apply(image).array[0]
    inside = changed[1:5, 1:5, 1:5].ravel()
    assert np.all(np.diff(inside) <= 0) and inside[0] > inside[-1]  # order reversed, monotone
    assert np.all(changed[0] == 0)
    assert Contrast().apply(image) is image


def test_landmark_set_command_on_the_mni_template(shared_data: Path, tmp_path: Path) -> None:
    template = shared_data / MNI
    labels = load(template)
    label_map = np.zeros(labels.array.shape, np.uint8)
    label_map[0, 60:100, 100:140, 60:90] = 1
    save(image_from_affine(label_map, labels.affine), tmp_path / "labels.nii.gz")
    out = tmp_path / "set"
    command = ["data", "landmarks", str(template), "--out", str(out), "--count", "2", "--spacing", "8"]
    assert main([*command, "--labels", str(tmp_path / "labels.nii.gz"), "--label-names", "block"]) == 0
    rows = _rows(out / "landmarks.csv")
    assert [r["group"] for r in rows] == ["case_0000", "case_0001"]
    for row in rows:
        image = load(out / row["image"])
        assert image.tags["deformed"] and image.spacing == pytest.approx((8.0, 8.0, 8.0))
        markups = read_fcsv(out / row["annotation"])
        assert list(markups.names) == list(MNI152_LANDMARKS)
        assert not np.allclose(markups.coordinates, np.array(list(MNI152_LANDMARKS.values())))
    box_rows = _rows(out / "boxes.csv")
    boxes = read_boxes(Sample(path=out / box_rows[0]["image"], target=out / box_rows[0]["annotation"]))
    warped = np.argwhere(load(out / "labels" / "case_0000.nii.gz").array[0] == 1)
    np.testing.assert_array_equal(boxes.boxes["block"], np.concatenate([warped.min(axis=0), warped.max(axis=0)]))
    cases = _rows(out / "cases.csv")
    assert all(float(c["min_jacobian"]) > MIN_JACOBIAN for c in cases)


def test_landmark_set_refuses_points_off_the_template(shared_data: Path, tmp_path: Path, capsys) -> None:
    write_fcsv(tmp_path / "far.fcsv", np.array([[0.0, 0.0, 0.0], [300.0, 0.0, 0.0]]), ["centre", "far away"])
    command = ["data", "landmarks", str(shared_data / MNI), "--out", str(tmp_path / "o"), "--count", "1"]
    assert main([*command, "--landmarks", str(tmp_path / "far.fcsv")]) != 0
    error = capsys.readouterr().err
    assert "far away" in error and "outside the template" in error
    probability = shared_data / "mni152/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
    assert main([*command, "--labels", str(probability)]) != 0
    assert "not a label map" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_run_on_deformed_cases_says_so(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    command = ["data", "landmarks", str(shared_data / MNI), "--out", str(out), "--count", "4", "--spacing", "8"]
    assert main(command) == 0
    run = tmp_path / "run"
    fast = ["--epochs", "1", "--batches-per-epoch", "1", "--quiet"]
    assert main(["localise", "train", "--data", str(out / "landmarks.csv"), "--out", str(run), *fast]) == 0
    assert "- deformed" in (run / "config.yaml").read_text()
    assert "one template under synthetic deformations" in (run / "report.html").read_text()
