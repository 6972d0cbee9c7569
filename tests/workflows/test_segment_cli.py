"""The segment commands end to end on real images (nuclei 2D, MNI152 3D, a CT DICOM series), through
the same entry point users run: plan -> train -> evaluate -> predict, resume, and refusals of bad data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from PIL import Image

from medlearn.cli.main import main
from medlearn.io import load, resample_to_spacing, save
from medlearn.io.geometry import image_from_affine

TILE = 64
FAST_2D = ["--set", "patch_size=[64,64]", "--set", "batch_size=4", "--set", "depth=3", "--quiet"]


def _write_pairs(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def nuclei(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Disjoint 64x64 tiles of the real nuclei image: 6 train, 2 validation, 2 test (relative paths)."""
    import tifffile

    folder = tmp_path_factory.mktemp("nuclei")
    image = tifffile.imread(shared_data / "nuclei-dsb2018/img2d.tif")
    mask = (tifffile.imread(shared_data / "nuclei-dsb2018/mask2d.tif") > 0).astype(np.uint8)
    corners = [(r, c) for r in range(0, 320, TILE) for c in (0, 192)][:10]
    rows = []
    for r, c in corners:
        name = f"tile_{r}_{c}.png"
        for sub, array in (("images", image), ("masks", mask)):
            (folder / sub).mkdir(exist_ok=True)
            Image.fromarray(array[r : r + TILE, c : c + TILE]).save(folder / sub / name)
        rows.append((f"images/{name}", f"masks/{name}"))
    return {
        "train": _write_pairs(folder / "train.csv", rows[:6]),
        "val": _write_pairs(folder / "val.csv", rows[6:8]),
        "test": _write_pairs(folder / "test.csv", rows[8:]),
        "folder": folder,
    }


def _train(data: dict, out: Path, *extra: str) -> int:
    return main(
        ["segment", "train", "--data", str(data["train"]), "--val", str(data["val"]), "--out", str(out), *extra]
    )


@pytest.fixture(scope="module")
def nuclei_run(nuclei, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "unet"
    assert _train(nuclei, out, "--epochs", "4", "--batches-per-epoch", "6", *FAST_2D) == 0
    return out


def test_train_writes_plan_checkpoints_and_report(nuclei_run: Path):
    plan = json.loads((nuclei_run / "plan.json").read_text())
    assert plan["spatial_dims"] == 2 and plan["patch_size"] == [64, 64] and plan["labels"] == [0, 1]
    assert (nuclei_run / "checkpoints/best/model.safetensors").is_file()
    assert json.loads((nuclei_run / "fingerprint.json").read_text())["labels"] == [0, 1]
    report = (nuclei_run / "report.html").read_text()
    for section in ("Per-case results", "Best and worst cases", "Plan", "Training curves"):
        assert section in report
    history = json.loads((nuclei_run / "metrics.json").read_text())
    history = history if isinstance(history, list) else history["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_run_keeps_its_architecture_when_a_model_default_changes(nuclei_run: Path, monkeypatch):
    import yaml

    from medlearn.apps.segmentation.model import TrainedSegmenter
    from medlearn.models import unet as unet_module

    recorded = yaml.safe_load((nuclei_run / "config.yaml").read_text())["segmentation"]["model_kwargs"]
    assert recorded["num_res_units"] == 2 and "depth" not in recorded  # depth and width come from the plan
    code = unet_module.unet.__code__
    names = code.co_varnames[: code.co_argcount]
    defaults = dict(zip(names[-len(unet_module.unet.__defaults__) :], unet_module.unet.__defaults__, strict=True))
    defaults["num_res_units"] = 0  # a later release changes a default that shapes the weights
    monkeypatch.setattr(unet_module.unet, "__defaults__", tuple(defaults.values()))
    model = TrainedSegmenter.from_run_dir(nuclei_run).model  # still loads: the run recorded num_res_units=2
    assert next(model.parameters()).shape[0] == 32  # the 2D plan's width


def test_evaluate_writes_mean_and_per_case_metrics(nuclei_run: Path, nuclei, tmp_path: Path):
    out = tmp_path / "metrics.json"
    assert main(["segment", "evaluate", str(nuclei_run), "--data", str(nuclei["test"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"dice", "iou", "hd95_mm", "per_case"} <= set(metrics)
    assert len(metrics["per_case"]) == 2
    # foreground covers about a fifth of a tile: predicting everything as nucleus scores ~0.3
    assert metrics["dice"] > 0.6
    assert metrics["iou"] < metrics["dice"]
    assert metrics["per_case"][0]["per_class"]["1"]["dice"] is not None
    assert (nuclei_run / "evaluation-test.html").is_file()


def test_predict_writes_masks_in_the_input_format_and_overlays(nuclei_run: Path, nuclei, tmp_path: Path):
    source = nuclei["folder"] / "images" / "tile_256_192.png"
    assert main(["segment", "predict", str(nuclei_run), str(source), "--out", str(tmp_path / "out")]) == 0
    mask = load(tmp_path / "out" / "tile_256_192_mask.png")
    assert mask.spatial_shape == (TILE, TILE) and set(np.unique(mask.array)) <= {0, 1}
    assert (tmp_path / "out" / "tile_256_192_overlay.png").is_file()
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").read_text().splitlines()))
    assert rows[0]["mask"].endswith("tile_256_192_mask.png") and float(rows[0]["area_mm2_1"]) > 0


def test_resume_continues_exactly_where_the_budget_stopped(nuclei, tmp_path: Path):
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    fixed_schedule = tmp_path / "fixed.yaml"  # the budget only interrupts here; it must not shorten the schedule
    fixed_schedule.write_text("training:\n  fit_schedule_to_budget: false\n")
    args = ["--epochs", "2", "--batches-per-epoch", "2", "--config", str(fixed_schedule), *FAST_2D]
    assert _train(nuclei, straight, *args) == 0
    assert _train(nuclei, parts, *args, "--max-minutes", "0.0001") == 0  # stops after epoch 1
    assert len(json.loads((parts / "metrics.json").read_text())) == 1
    assert main(["segment", "train", "--resume", str(parts), "--quiet"]) == 0
    loss = [[row["train_loss"] for row in json.loads((run / "metrics.json").read_text())] for run in (straight, parts)]
    assert loss[0] == loss[1]


def test_mismatched_mask_is_a_clear_error_and_creates_no_run(nuclei, tmp_path: Path, capsys):
    folder = nuclei["folder"]
    Image.fromarray(np.zeros((TILE, TILE + 1), np.uint8)).save(tmp_path / "wide.png")
    bad = _write_pairs(tmp_path / "bad.csv", [(str(folder / "images/tile_0_0.png"), str(tmp_path / "wide.png"))])
    code = main(["segment", "train", "--data", str(bad), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "wide.png" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_evaluating_on_masks_with_unknown_labels_is_refused(nuclei_run: Path, nuclei, tmp_path: Path, capsys):
    Image.fromarray(np.full((TILE, TILE), 3, np.uint8)).save(tmp_path / "three.png")
    bad = _write_pairs(
        tmp_path / "bad.csv", [(str(nuclei["folder"] / "images/tile_0_0.png"), str(tmp_path / "three.png"))]
    )
    assert main(["segment", "evaluate", str(nuclei_run), "--data", str(bad)]) == 2
    assert "labels [3] that the plan does not know" in capsys.readouterr().err


def test_3d_run_on_the_mni152_template_segments_white_matter(shared_data: Path, tmp_path: Path):
    """An isotropic volume gets a 3D plan; the predicted mask comes back on the input's own grid."""
    t1 = resample_to_spacing(load(shared_data / "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"), 4.0)
    wm = resample_to_spacing(load(shared_data / "mni152/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), 4.0)
    rows = []
    for name, slab in (("upper", slice(24, None)), ("lower", slice(0, 24))):
        image = image_from_affine(t1.array[..., slab], t1.affine @ _shift(slab.start))
        mask = image_from_affine((wm.array[..., slab] > 128).astype(np.uint8), image.affine)
        rows.append((str(save(image, tmp_path / f"{name}_t1.nii.gz")), str(save(mask, tmp_path / f"{name}_wm.nii.gz"))))
    data = {
        "train": _write_pairs(tmp_path / "train.csv", rows[:1]),
        "val": _write_pairs(tmp_path / "val.csv", rows[1:]),
    }
    out = tmp_path / "run3d"
    args = [
        "--epochs",
        "3",
        "--batches-per-epoch",
        "4",
        "--set",
        "patch_size=[32,32,16]",
        "--set",
        "depth=2",
        "--quiet",
    ]
    assert _train(data, out, *args) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["spatial_dims"] == 3 and plan["slice_axis"] is None
    assert main(["segment", "predict", str(out), rows[1][0], "--out", str(tmp_path / "pred")]) == 0
    predicted = load(tmp_path / "pred" / "lower_t1_mask.nii.gz")
    source = load(rows[1][0])
    assert predicted.spatial_shape == source.spatial_shape
    np.testing.assert_allclose(predicted.affine, source.affine, atol=1e-4)
    # the same volume stored another way (axes permuted and flipped, as a sagittal acquisition would store it):
    # the model sees it reoriented to RAS+ and its mask comes back in the file's own array order, voxel for voxel
    assert plan["canonical"] is True
    stored = np.flip(np.transpose(source.array, (0, 3, 1, 2)), axis=1)
    permute = np.array([[0, 0, -1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    permute[:3, 3] = [source.spatial_shape[2] - 1, 0, 0]
    sagittal = image_from_affine(np.ascontiguousarray(stored), source.affine @ np.linalg.inv(permute) @ np.eye(4))
    save(sagittal, tmp_path / "sagittal.nii.gz")
    assert main(["segment", "predict", str(out), str(tmp_path / "sagittal.nii.gz"), "--out", str(tmp_path / "p2")]) == 0
    again = load(tmp_path / "p2" / "sagittal_mask.nii.gz")
    expected = np.flip(np.transpose(predicted.array, (0, 3, 1, 2)), axis=1)
    np.testing.assert_array_equal(again.array, expected)


def _shift(start: int | None) -> np.ndarray:
    shift = np.eye(4)
    shift[2, 3] = start or 0
    return shift


def test_dicom_series_gets_a_slice_wise_plan_and_a_dicom_seg(make_ct_series, tmp_path: Path):
    """Thick CT slices are segmented slice by slice; the SEG references every source slice it covers."""
    make_ct_series(tmp_path / "ct", count=6, step=-5.0)
    image = load(tmp_path / "ct")
    body = (image.array[0] > -200).astype(np.uint8)
    mask_path = save(image_from_affine(body[None], image.affine), tmp_path / "ct_mask.nii.gz")
    train = _write_pairs(tmp_path / "train.csv", [(str(tmp_path / "ct"), str(mask_path))])
    out = tmp_path / "run"
    args = ["--epochs", "1", "--batches-per-epoch", "2", "--set", "patch_size=[64,64]", "--set", "batch_size=2"]
    assert (
        main(["segment", "train", "--data", str(train), "--out", str(out), "--modality", "CT", *args, "--quiet"]) == 0
    )
    plan = json.loads((out / "plan.json").read_text())
    assert plan["spatial_dims"] == 2 and plan["slice_axis"] == 2 and plan["normalization"] == "ct"
    assert main(["segment", "predict", str(out), str(tmp_path / "ct"), "--out", str(tmp_path / "pred")]) == 0
    rows = list(csv.DictReader((tmp_path / "pred" / "predictions.csv").read_text().splitlines()))
    mask = load(rows[0]["mask"])
    assert mask.spatial_shape == image.spatial_shape
    assert rows[0]["dicom_seg"].endswith("_seg.dcm")  # the body covers most of the image: never empty
    seg = hd.seg.segread(rows[0]["dicom_seg"])
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert len({str(item.ReferencedSOPInstanceUID) for item in referenced}) == 6


def test_training_on_empty_masks_only_is_refused(nuclei, tmp_path: Path, capsys):
    Image.fromarray(np.zeros((TILE, TILE), np.uint8)).save(tmp_path / "empty.png")
    image = str(nuclei["folder"] / "images/tile_0_0.png")
    bad = _write_pairs(tmp_path / "empty.csv", [(image, str(tmp_path / "empty.png"))] * 2)
    assert main(["segment", "train", "--data", str(bad), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "every training mask is empty" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_hybrid_set_is_marked_hybrid_through_to_the_evaluation(nuclei_run: Path, br35h_root: Path, tmp_path: Path):
    """`data hybrid` writes exact masks and a lesion table; results on such data are labelled HYBRID."""
    out = tmp_path / "hybrid"
    code = main(["data", "hybrid", str(br35h_root / "no"), "--out", str(out), "--count", "4", "--radii", "3,9"])
    assert code == 0
    pairs = list(csv.DictReader((out / "pairs.csv").read_text().splitlines()))
    lesions = list(csv.DictReader((out / "lesions.csv").read_text().splitlines()))
    assert len(pairs) == 4 and [float(row["radius_mm"]) for row in lesions[:2]] == [3.0, 3.0]
    first = load(out / pairs[0]["image"])
    assert first.tags["hybrid"] and load(out / pairs[0]["mask"]).array.sum() == int(lesions[0]["voxels"])
    small, large = int(lesions[0]["voxels"]), int(lesions[-1]["voxels"])
    assert large > 4 * small  # radius 9 against radius 3
    metrics = tmp_path / "m.json"
    assert main(["segment", "evaluate", str(nuclei_run), "--data", str(out / "pairs.csv"), "--json", str(metrics)]) == 0
    assert json.loads(metrics.read_text())["hybrid"] is True
    assert "HYBRID" in (nuclei_run / "evaluation-pairs.html").read_text()


def test_predict_keeps_a_2d_nifti_as_nifti_and_never_overwrites_same_named_inputs(
    nuclei_run: Path, nuclei, tmp_path: Path
):
    """A 2D NIfTI's mask is NIfTI (affine and spacing kept); a/x and b/x get two masks, not one overwritten."""
    tile = load(nuclei["folder"] / "images" / "tile_256_192.png")
    spaced = image_from_affine(tile.array.astype(np.float32), np.diag([0.5, 0.5, 1.0, 1.0]))
    for folder in ("a", "b"):
        save(spaced, tmp_path / folder / "x.nii.gz")
    out = tmp_path / "out"
    assert (
        main(["segment", "predict", str(nuclei_run), str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    )
    masks = sorted(p.name for p in out.glob("*_mask.*"))
    assert masks == ["a__x_mask.nii.gz", "b__x_mask.nii.gz"]
    mask = load(out / "a__x_mask.nii.gz")
    assert mask.spatial_shape == spaced.spatial_shape and np.allclose(mask.affine, spaced.affine)


def test_distinct_stems_disambiguate_only_what_collides(tmp_path: Path):
    from medlearn.data.outputs import distinct_stems

    paths = [tmp_path / "p1/s/x.nii.gz", tmp_path / "p2/s/x.nii.gz", tmp_path / "p1/y.png", tmp_path / "p3/z.dcm"]
    stems = distinct_stems(paths)
    assert stems[paths[0]] == "p1__s__x" and stems[paths[1]] == "p2__s__x"
    assert stems[paths[2]] == "y" and stems[paths[3]] == "z"
    assert len(set(distinct_stems([tmp_path / "x.png", tmp_path / "x.png"]).values())) == 1  # the same file


def test_evaluate_scores_the_classical_baselines_beside_the_model_and_says_who_wins(
    nuclei_run: Path, nuclei, tmp_path: Path, capsys
):
    """Training stored the learned threshold; evaluate scores it and Otsu on the same cases, compares in plain
    words, and the report analyses failures against foreground share, intensity and the training intensities."""
    stored = json.loads((nuclei_run / "baseline.json").read_text())
    assert stored["labels"] == [0, 1] and stored["thresholds"]
    out = tmp_path / "metrics.json"
    assert main(["segment", "evaluate", str(nuclei_run), "--data", str(nuclei["test"]), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(out.read_text())
    assert set(metrics["baseline"]) == {"global-threshold", "otsu"}
    assert metrics["baseline"]["global-threshold"]["dice"] > 0.6  # a real threshold on real nuclei
    comparison = metrics["baseline_comparison"]
    assert comparison["metric"] == "dice" and comparison["text"] in printed
    assert ("does NOT beat" in comparison["text"]) == (not comparison["beaten"])
    assert comparison["beaten"] == (metrics["dice"] > max(b["dice"] for b in metrics["baseline"].values()))
    case = metrics["per_case"][0]
    assert (
        0 < case["foreground_share"] < 1 and case["mean_intensity"] > 0 and "global-threshold" in case["baseline_dice"]
    )
    report = (nuclei_run / "evaluation-test.html").read_text()
    assert "Failure analysis" in report and "Classical baselines" in report
    assert "Intensities of the training cases and of the evaluated cases" in report


def test_evaluate_under_an_intensity_shift_hurts_the_fixed_threshold(nuclei_run: Path, nuclei, tmp_path: Path):
    plain, shifted = tmp_path / "plain.json", tmp_path / "shifted.json"
    data = ["--data", str(nuclei["test"])]
    assert main(["segment", "evaluate", str(nuclei_run), *data, "--json", str(plain)]) == 0
    assert main(["segment", "evaluate", str(nuclei_run), *data, "--json", str(shifted), "--shift", "scale:1.6"]) == 0
    before, after = json.loads(plain.read_text()), json.loads(shifted.read_text())
    assert after["shift"] == "scale:1.6" and before["shift"] is None
    threshold = "global-threshold"
    assert after["baseline"][threshold]["dice"] < before["baseline"][threshold]["dice"] - 0.05  # absolute scale lost
    assert after["baseline"]["otsu"]["dice"] == pytest.approx(before["baseline"]["otsu"]["dice"], abs=0.02)
    assert (nuclei_run / "evaluation-test-scale-1.6.html").is_file()
    assert main(["segment", "evaluate", str(nuclei_run), *data, "--shift", "brightness:2"]) == 2


def test_an_exported_onnx_network_segments_like_the_run(nuclei_run: Path, nuclei, tmp_path: Path):
    model = tmp_path / "unet.onnx"
    assert main(["export", str(nuclei_run), "--out", str(model)]) == 0
    source = nuclei["folder"] / "images" / "tile_256_192.png"
    for name, predictor in (("onnx", model), ("run", nuclei_run)):
        assert main(["segment", "predict", str(predictor), str(source), "--out", str(tmp_path / name)]) == 0
    exported, original = (load(tmp_path / name / "tile_256_192_mask.png").array for name in ("onnx", "run"))
    assert exported.shape == original.shape and (exported != original).mean() < 0.01  # bf16 run vs fp32 ONNX
