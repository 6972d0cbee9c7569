"""Classical registration from the CLI on the real MNI152 T1: a known synthetic deformation is undone (points land
where the deformation put them), the displacement field, the ITK transform file and the warped image all describe
the same mapping, labels are warped and scored, a 2D PNG stays a PNG, bad requests are refused clearly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medlearn.cli.main import main
from medlearn.data.deformation import RandomDeformation
from medlearn.data.landmark_set import mni152_landmarks
from medlearn.io import load, resample_to_spacing, save
from medlearn.io.geometry import image_from_affine, voxel_to_world
from medlearn.io.itk import FLIP, from_sitk, to_sitk
from medlearn.io.warp import warp
from medlearn.utils.atomic import write_csv_atomic

MNI = "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def pair(shared_data: Path, tmp_path_factory) -> dict:
    """The template at 6 mm (fixed), a deformed copy (moving), the landmarks and where the deformation put them."""
    folder = tmp_path_factory.mktemp("register")
    fixed = resample_to_spacing(load(shared_data / MNI), 6.0)
    save(fixed, folder / "fixed.nii.gz")
    rng = np.random.default_rng(3)
    deformation = RandomDeformation(rotation_deg=8, scale=0.05, translation_mm=8, elastic_mm=2.5).sample(fixed, rng)
    moving = deformation.apply(fixed)
    save(moving, folder / "moving.nii.gz")
    labels = np.zeros((1, *fixed.spatial_shape), np.uint8)
    labels[0][fixed.array[0] > np.percentile(fixed.array[0], 75)] = 1
    save(image_from_affine(labels, fixed.affine), folder / "fixed_labels.nii.gz")
    save(deformation.apply(image_from_affine(labels, fixed.affine), order=0), folder / "moving_labels.nii.gz")
    landmarks = mni152_landmarks()
    rows = [(name, *point) for name, point in zip(landmarks.names, landmarks.coordinates, strict=True)]
    write_csv_atomic(folder / "points.csv", ["label", "x", "y", "z"], rows)
    return {
        "folder": folder,
        "points": landmarks.coordinates,
        "truth": deformation.map_points(landmarks.coordinates),
    }


def _register(pair: dict, out: Path, method: str, *extra: str) -> dict:
    folder = pair["folder"]
    command = ["register", "pair", "--fixed", str(folder / "fixed.nii.gz"), "--moving", str(folder / "moving.nii.gz")]
    assert main([*command, "--out", str(out), "--method", method, "--points", str(folder / "points.csv"), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _mapped(out: Path) -> np.ndarray:
    return np.array([[float(r[a]) for a in "xyz"] for r in _rows(out / "points.csv")])


def test_affine_undoes_a_known_motion_and_every_output_agrees(pair: dict, tmp_path: Path) -> None:
    metrics = _register(pair, tmp_path, "affine")
    identity_error = np.linalg.norm(pair["points"] - pair["truth"], axis=1).mean()
    error = np.linalg.norm(_mapped(tmp_path) - pair["truth"], axis=1).mean()
    assert identity_error > 5.0 and error < 0.5 * identity_error
    assert metrics["registered"]["ncc"] > metrics["identity"]["ncc"]
    assert metrics["folding_fraction"] == 0.0
    # the ITK transform file maps the points as points.csv says (LPS inside ITK, RAS outside)
    transform = sitk.ReadTransform(str(tmp_path / "transform.h5"))
    via_itk = np.array([transform.TransformPoint(tuple(p @ FLIP)) for p in pair["points"]]) @ FLIP
    np.testing.assert_allclose(via_itk, _mapped(tmp_path), atol=1e-3)
    # medlearn's own warp with the written displacement field gives the written warped image
    field = load(tmp_path / "displacement.nii.gz")
    rewarped = warp(load(pair["folder"] / "moving.nii.gz"), field)
    warped = load(tmp_path / "warped.nii.gz")
    inside = warped.array[0] > 0
    assert np.abs(rewarped.array[0][inside] - warped.array[0][inside]).mean() < 0.02 * warped.array[0].max()
    assert (tmp_path / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demons_follows_the_elastic_part_and_labels_are_warped(pair: dict, tmp_path: Path) -> None:
    folder = pair["folder"]
    labels = ["--labels", str(folder / "moving_labels.nii.gz"), "--fixed-labels", str(folder / "fixed_labels.nii.gz")]
    affine = _register(pair, tmp_path / "affine", "affine", *labels)
    demons = _register(pair, tmp_path / "demons", "demons", *labels)
    assert demons["dice"]["mean"] > affine["dice"]["mean"] > affine["dice_identity"]["mean"]
    assert demons["sdlogj"] > 0.0 and 0.0 <= demons["folding_fraction"] < 0.01
    warped_labels = load(tmp_path / "demons" / "warped_labels.nii.gz")
    assert set(np.unique(warped_labels.array)) <= {0, 1}
    jacobian = load(tmp_path / "demons" / "jacobian.nii.gz").array[0]  # the map the folding share is counted on
    assert jacobian.shape == warped_labels.spatial_shape and np.mean(jacobian <= 0) == demons["folding_fraction"]
    demons_error = np.linalg.norm(_mapped(tmp_path / "demons") - pair["truth"], axis=1).mean()
    affine_error = np.linalg.norm(_mapped(tmp_path / "affine") - pair["truth"], axis=1).mean()
    assert demons_error < affine_error


def test_a_2d_png_is_registered_in_its_plane_and_stays_a_png(shared_data: Path, tmp_path: Path) -> None:
    import tifffile
    from PIL import Image

    image = tifffile.imread(shared_data / "nuclei-dsb2018" / "img2d.tif")[:160, :160]
    scaled = (255 * (image - image.min()) / (image.max() - image.min())).astype(np.uint8)
    Image.fromarray(scaled).save(tmp_path / "fixed.png")
    fixed = load(tmp_path / "fixed.png")
    moved = np.roll(fixed.array, (6, -4), axis=(1, 2))  # content moves +6, -4 pixels along medlearn's axes
    save(image_from_affine(moved, fixed.affine), tmp_path / "moving.png")
    out = tmp_path / "out"
    command = ["register", "pair", "--fixed", str(tmp_path / "fixed.png"), "--moving", str(tmp_path / "moving.png")]
    assert main([*command, "--out", str(out), "--method", "rigid", "--metric", "correlation"]) == 0
    warped = load(out / "warped.png")
    assert warped.array.dtype == np.uint8 and warped.spatial_shape == (160, 160)
    field = load(out / "displacement.nii.gz")
    assert field.channels == 2
    # the field says where each fixed pixel's value comes from in the moving image: the roll, in mm on this grid
    centre = np.array([[80.0, 80.0]])
    shift_world = voxel_to_world(fixed.affine, centre + np.array([[6.0, -4.0]])) - voxel_to_world(fixed.affine, centre)
    np.testing.assert_allclose(field.array[:, 80, 80], shift_world[0, :2], atol=0.5)


def test_itk_round_trip_keeps_the_world_positions(pair: dict) -> None:
    fixed = load(pair["folder"] / "fixed.nii.gz")
    itk = to_sitk(fixed)
    index = (3, 5, 7)
    world = voxel_to_world(fixed.affine, np.array([index], float))[0]
    np.testing.assert_allclose(np.array(itk.TransformIndexToPhysicalPoint(index)), FLIP @ world, atol=1e-6)
    back = from_sitk(itk, fixed)
    np.testing.assert_array_equal(back.array, fixed.array.astype(np.float32))


def test_bad_requests_are_refused_in_one_line(pair: dict, tmp_path: Path, capsys) -> None:
    folder = pair["folder"]
    command = ["register", "pair", "--fixed", str(folder / "fixed.nii.gz"), "--moving", str(folder / "moving.nii.gz")]
    assert main([*command, "--out", str(tmp_path / "a"), "--method", "elastix"]) == 2
    assert "unknown registration method 'elastix'" in capsys.readouterr().err
    assert main([*command, "--out", str(tmp_path / "b"), "--metric", "ssd"]) == 2
    assert "mattes" in capsys.readouterr().err
    assert main(["register", "methods"]) == 0
    assert "demons" in capsys.readouterr().out
    outside = tmp_path / "outside.csv"
    write_csv_atomic(outside, ["label", "x", "y", "z"], [("far", 900.0, 0.0, 0.0)])
    assert main([*command, "--out", str(tmp_path / "c"), "--points", str(outside)]) == 2
    assert "point 'far'" in capsys.readouterr().err and not (tmp_path / "c").exists()
    fixed = load(folder / "fixed.nii.gz")
    save(image_from_affine(np.zeros_like(fixed.array, dtype=np.uint8), fixed.affine), tmp_path / "empty.nii.gz")
    assert main([*command, "--out", str(tmp_path / "d"), "--fixed-mask", str(tmp_path / "empty.nii.gz")]) == 2
    assert "mask is empty" in capsys.readouterr().err
    broken = fixed.array.copy()
    broken[0, 3, 3, 3] = np.nan
    save(image_from_affine(broken, fixed.affine), tmp_path / "nan.nii.gz")
    nan_command = [
        "register",
        "pair",
        "--fixed",
        str(tmp_path / "nan.nii.gz"),
        "--moving",
        str(folder / "moving.nii.gz"),
    ]
    assert main([*nan_command, "--out", str(tmp_path / "e")]) == 2
    assert "NaN" in capsys.readouterr().err


def test_evaluate_pairs_of_a_landmark_set_beside_the_identity(shared_data: Path, tmp_path: Path) -> None:
    template = load(shared_data / MNI)
    block = np.zeros(template.array.shape, np.uint8)
    block[0, 60:140, 80:160, 50:110] = 1
    save(image_from_affine(block, template.affine), tmp_path / "block.nii.gz")
    cases = tmp_path / "cases"
    command = ["data", "landmarks", str(shared_data / MNI), "--out", str(cases), "--count", "3", "--spacing", "8"]
    assert main([*command, "--labels", str(tmp_path / "block.nii.gz")]) == 0
    rows = [
        (
            "images/case_0000.nii.gz",
            f"images/case_000{k}.nii.gz",
            "labels/case_0000.nii.gz",
            f"labels/case_000{k}.nii.gz",
            "landmarks/case_0000.fcsv",
            f"landmarks/case_000{k}.fcsv",
        )
        for k in (1, 2)
    ]
    columns = ["fixed", "moving", "fixed_labels", "moving_labels", "fixed_points", "moving_points"]
    write_csv_atomic(cases / "pairs.csv", columns, rows)
    out = tmp_path / "m.json"
    assert (
        main(["register", "evaluate", "--data", str(cases / "pairs.csv"), "--method", "affine", "--json", str(out)])
        == 0
    )
    summary = json.loads(out.read_text())
    for key in ("dice", "hd95_mm", "tre_mm", "folding_fraction", "sdlogj", "seconds_per_pair", "baseline"):
        assert key in summary
    page = out.with_suffix(".html").read_text()  # the report beside the JSON: table, examples with Jacobian maps
    assert "Method beside its baselines" in page and page.count("data:image/png;base64") == 2
    identity = summary["baseline"]["identity"]
    assert summary["pairs"] == 2 and summary["tre_mm"] < identity["tre_mm"]
    assert summary["dice"] > identity["dice"]
    bad = tmp_path / "bad.csv"
    write_csv_atomic(
        bad,
        ["fixed", "moving", "fixed_labels"],
        [("cases/images/case_0000.nii.gz", "cases/images/case_0001.nii.gz", "cases/labels/case_0000.nii.gz")],
    )
    assert main(["register", "evaluate", "--data", str(bad)]) == 2


def test_segment_atlas_carries_the_atlas_labels_onto_each_image(pair: dict, tmp_path: Path, capsys) -> None:
    """The deformed copy and its labels as the atlas, the template as the image: demons brings the labels home."""
    folder = pair["folder"]
    write_csv_atomic(
        tmp_path / "images.csv", ["image", "mask"], [(folder / "fixed.nii.gz", folder / "fixed_labels.nii.gz")]
    )
    atlas = ["--atlas", str(folder / "moving.nii.gz"), "--atlas-labels", str(folder / "moving_labels.nii.gz")]
    out, summary_path = tmp_path / "masks", tmp_path / "atlas.json"
    command = ["segment", "atlas", *atlas, "--data", str(tmp_path / "images.csv"), "--out", str(out)]
    assert main([*command, "--json", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    truth = load(folder / "fixed_labels.nii.gz").array[0] > 0
    moved = load(folder / "moving_labels.nii.gz").array[0] > 0
    unregistered = 2 * (truth & moved).sum() / (truth.sum() + moved.sum())
    assert summary["method"] == "atlas (demons)" and summary["dice"] > max(unregistered, 0.9)
    written = load(out / "fixed_atlas.nii.gz")
    assert written.spatial_shape == load(folder / "fixed.nii.gz").spatial_shape
    assert main([*command[:2], "--atlas", str(folder / "moving.nii.gz"), "--data", str(tmp_path / "images.csv"),
                 "--out", str(out)]) == 2  # fmt: skip
    assert "atlas-labels" in capsys.readouterr().err


def test_an_atlas_is_one_more_baseline_of_segment_evaluate(pair: dict) -> None:
    """An atlas registered by the identity onto itself reproduces its labels exactly: Dice 1 under its own name."""
    from medlearn.apps.registration.classical import RegistrationResult
    from medlearn.apps.segmentation.atlas import Atlas
    from medlearn.apps.segmentation.evaluate import _baseline_metrics

    folder = pair["folder"]
    image, labels = load(folder / "fixed.nii.gz"), load(folder / "fixed_labels.nii.gz")
    atlas = Atlas(
        image,
        labels,
        lambda fixed, moving, mask: RegistrationResult(sitk.Transform(3, sitk.sitkIdentity), 0.0, 0.0, "identity"),
        "atlas (identity)",
    )  # noqa: E501
    truth = np.rint(labels.array[0]).astype(np.int64)
    metrics = _baseline_metrics(None, image, truth, [0, 1], atlas)
    assert list(metrics) == ["atlas (identity)"] and metrics["atlas (identity)"][1]["dice"] == 1.0


def test_a_known_translation_is_recovered_to_a_fraction_of_a_voxel(pair: dict, tmp_path: Path) -> None:
    """The template moved by a known sub-voxel-unaligned translation: rigid registration finds it within 0.2 voxel."""
    folder = pair["folder"]
    fixed = load(folder / "fixed.nii.gz")
    shift = np.array([7.3, -4.1, 2.6])  # mm: the moving image's content sits at x - shift in its own world
    moved = fixed.affine.copy()
    moved[:3, 3] -= shift
    save(image_from_affine(fixed.array, moved), tmp_path / "translated.nii.gz")
    command = [
        "register",
        "pair",
        "--fixed",
        str(folder / "fixed.nii.gz"),
        "--moving",
        str(tmp_path / "translated.nii.gz"),
    ]
    assert main([*command, "--out", str(tmp_path / "out"), "--method", "rigid", "--metric", "correlation"]) == 0
    field = load(tmp_path / "out" / "displacement.nii.gz").array.reshape(3, -1)
    recovered = np.median(field, axis=1)  # a pure translation: the same vector at every voxel
    voxel = float(np.min(fixed.spacing))
    assert np.linalg.norm(recovered + shift) < 0.2 * voxel, recovered
