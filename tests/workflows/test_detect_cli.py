"""The detect commands end to end on real nuclei tiles (instance masks, points CSVs and a negative image mixed in
one training set), through the entry point users run: train -> evaluate -> predict, and refusals of bad data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medlearn.cli.main import main

TILE = 64
FAST = ["--set", "patch_size=[64,64]", "--set", "batch_size=4", "--set", "depth=3", "--quiet"]
JSON_KEYS = ("cpm", "froc", "sensitivity_at_1fp", "average_precision", "mean_distance_mm", "baseline")


def _write_rows(path: Path, rows: list[tuple[str, ...]], header=("image", "annotation")) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def nuclei(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Disjoint 64x64 tiles of the real nuclei image with their instance masks: training rows annotated by
    masks, by points CSVs (centroids, i/j) and one negative image (empty annotation); validation and test
    rows by masks."""
    import tifffile

    folder = tmp_path_factory.mktemp("nuclei-detection")
    image = tifffile.imread(shared_data / "nuclei-dsb2018/img2d.tif")
    labels = tifffile.imread(shared_data / "nuclei-dsb2018/mask2d.tif").astype(np.uint16)
    corners = [(r, c) for r in range(0, 320, TILE) for c in (0, 192)][:10]
    rows = []
    for index, (r, c) in enumerate(corners):
        name = f"tile_{r}_{c}.png"
        tile_labels = labels[r : r + TILE, c : c + TILE]
        for sub, array in (("images", image[r : r + TILE, c : c + TILE]), ("masks", tile_labels)):
            (folder / sub).mkdir(exist_ok=True)
            Image.fromarray(np.ascontiguousarray(array)).save(folder / sub / name)
        annotation = f"masks/{name}"
        if index in (1, 3):  # the same objects as centroid points
            ids = [v for v in np.unique(tile_labels) if v]
            centres = ndimage.center_of_mass(np.ones(tile_labels.shape), tile_labels, ids)
            (folder / "points").mkdir(exist_ok=True)
            annotation = f"points/{Path(name).stem}.csv"
            _write_rows(
                folder / annotation, [(f"{i:.2f}", f"{j:.2f}", "6") for i, j in centres], ("i", "j", "radius_mm")
            )
        rows.append((f"images/{name}", annotation))
    rows[5] = (rows[5][0], "")  # a negative image: nothing annotated
    return {
        "train": _write_rows(folder / "train.csv", rows[:6]),
        "val": _write_rows(folder / "val.csv", rows[6:8]),
        "test": _write_rows(folder / "test.csv", rows[8:]),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def trained(nuclei: dict, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detect-runs") / "run"
    status = main(
        ["detect", "train", "--data", str(nuclei["train"]), "--val", str(nuclei["val"]), "--out", str(out)]
        + ["--epochs", "2", "--batches-per-epoch", "3", *FAST]
    )
    assert status == 0
    return out


def test_train_records_plan_baseline_and_validation_report(trained: Path) -> None:
    config = (trained / "config.yaml").read_text()
    assert "task: detection" in config and "centre-heatmap" in config
    baseline = json.loads((trained / "baseline.json").read_text())
    assert baseline["polarity"] in (1, -1) and baseline["sigmas_mm"]
    metrics = json.loads((trained / "val_metrics.json").read_text())
    assert metrics["targets"] > 0 and metrics["images"] == 2
    assert "log-blobs" in metrics["baseline"] and "baseline_comparison" in metrics
    report = (trained / "report.html").read_text()
    for title in ("FROC", "Sensitivity by object size", "Examples", "Classical baseline"):
        assert title in report


def test_evaluate_writes_the_contract_keys(trained: Path, nuclei: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.json"
    assert main(["detect", "evaluate", str(trained), "--data", str(nuclei["test"]), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    for key in JSON_KEYS:
        assert key in summary
    assert [p["fp_per_image"] for p in summary["froc"]] == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert summary["cpm"] == pytest.approx(np.mean([p["sensitivity"] for p in summary["froc"]]))
    assert summary["baseline"]["log-blobs"]["cpm"] is not None
    truth = sum(1 for _ in (nuclei["folder"] / "masks").iterdir()) and summary["targets"]
    assert truth > 0 and summary["images"] == 2
    printed = capsys.readouterr().out
    assert "CPM" in printed and "classical baseline" in printed


def test_predict_writes_candidate_tables_and_overlays(trained: Path, nuclei: dict, tmp_path: Path) -> None:
    images = sorted((nuclei["folder"] / "images").iterdir())[:2]
    out = tmp_path / "found"
    assert main(["detect", "predict", str(trained), *map(str, images), "--out", str(out), "--threshold", "0.2"]) == 0
    with open(out / f"{images[0].stem}_candidates.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["x", "y", "i", "j", "score", "radius_mm"]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all(0 <= float(r["i"]) <= TILE - 1 and 0 <= float(r["j"]) <= TILE - 1 for r in rows)
    assert (out / f"{images[0].stem}_overlay.png").is_file()
    with open(out / "candidates.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == 2 and all(float(r["threshold"]) == 0.2 for r in summary)
    assert int(summary[0]["found"]) == sum(s >= 0.2 for s in scores)


def test_points_outside_the_image_are_refused_before_a_run_exists(nuclei: dict, tmp_path: Path, capsys) -> None:
    folder = nuclei["folder"]
    bad = _write_rows(tmp_path / "outside.csv", [("80", "10")], ("i", "j"))
    data = _write_rows(tmp_path / "train.csv", [(str(folder / "images/tile_0_0.png"), str(bad))])
    out = tmp_path / "run"
    assert main(["detect", "train", "--data", str(data), "--out", str(out), "--epochs", "1", *FAST]) == 2
    error = capsys.readouterr().err
    assert "outside.csv" in error and "outside the image" in error
    assert not out.exists()


def test_unknown_model_lists_the_detection_models(nuclei: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    status = main(["detect", "train", "--data", str(nuclei["train"]), "--out", str(out), "--model", "nope", *FAST])
    assert status == 2
    error = capsys.readouterr().err
    assert "centre-heatmap" in error and "pixel-components" in error


def test_only_negative_images_is_a_clear_error(nuclei: dict, tmp_path: Path, capsys) -> None:
    folder = nuclei["folder"]
    data = _write_rows(tmp_path / "train.csv", [(str(folder / "images/tile_0_0.png"), "")] * 2)
    assert main(["detect", "train", "--data", str(data), "--out", str(tmp_path / "run"), *FAST]) == 2
    assert "no row has an annotation" in capsys.readouterr().err


def test_anisotropic_volumes_are_refused_with_the_reason(shared_data: Path, tmp_path: Path, capsys) -> None:
    """brain1 is 0.78 x 0.78 x 6.5 mm: the plan would go slice by slice, which detection does not do yet."""
    folder = shared_data / "pyradiomics"
    data = _write_rows(
        tmp_path / "train.csv",
        [(str(folder / "brain1_image.nrrd"), str(folder / "brain1_label.nrrd"))] * 1
        + [(str(folder / "brain2_image.nrrd"), str(folder / "brain2_label.nrrd"))],
    )
    status = main(["detect", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet", "--epochs", "1"])
    assert status == 2
    assert "anisotropic" in capsys.readouterr().err


def test_detection_in_3d_volumes_from_world_points(shared_data: Path, tmp_path: Path) -> None:
    """Bright blobs in the real MNI152 T1 (6 mm), annotated as world x,y,z points: train, evaluate, predict."""
    from medlearn.io import load, resample_to_spacing, save
    from medlearn.io.geometry import image_from_affine, voxel_to_world

    template = resample_to_spacing(load(shared_data / "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"), 6.0)
    rng = np.random.default_rng(0)
    rows = []
    for n in range(6):
        volume = template.array[0].astype(np.float32).copy()
        centres = rng.integers(6, 20, (2, 3)).astype(float)
        for centre in centres:
            volume[tuple(slice(int(c) - 1, int(c) + 2) for c in centre)] += 2 * volume.max()
        save(image_from_affine(volume[None], template.affine, modality="MR"), tmp_path / f"v{n}.nii.gz")
        world = voxel_to_world(template.affine, centres)
        _write_rows(tmp_path / f"v{n}.csv", [(*map(str, p), "6") for p in world], ("x", "y", "z", "radius_mm"))
        rows.append((f"v{n}.nii.gz", f"v{n}.csv"))
    train = _write_rows(tmp_path / "train.csv", rows[:4])
    val = _write_rows(tmp_path / "val.csv", rows[4:5])
    test = _write_rows(tmp_path / "test.csv", rows[5:])
    out = tmp_path / "run"
    fast = [
        "--epochs",
        "1",
        "--batches-per-epoch",
        "2",
        "--set",
        "patch_size=[16,16,16]",
        "--set",
        "depth=2",
        "--quiet",
    ]
    assert main(["detect", "train", "--data", str(train), "--val", str(val), "--out", str(out), *fast]) == 0
    assert json.loads((out / "plan.json").read_text())["spatial_dims"] == 3
    assert main(["detect", "evaluate", str(out), "--data", str(test), "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["targets"] == 2
    found = tmp_path / "found"
    assert main(["detect", "predict", str(out), str(tmp_path / "v5.nii.gz"), "--out", str(found)]) == 0
    with open(found / "v5_candidates.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["x", "y", "z", "i", "j", "k", "score", "radius_mm"]


def test_an_exported_onnx_network_detects_like_the_run(trained: Path, nuclei: dict, tmp_path: Path) -> None:
    model = tmp_path / "detector.onnx"
    assert main(["export", str(trained), "--out", str(model)]) == 0
    image = sorted((nuclei["folder"] / "images").iterdir())[0]
    fp32_run = tmp_path / "fp32-run"  # the run as it is, inferring in fp32 like ONNX (bf16 moves flat peaks)
    shutil.copytree(trained, fp32_run)
    config = fp32_run / "config.yaml"
    config.write_text(config.read_text().replace("precision: auto", "precision: fp32"))
    found = {}
    for name, predictor in (("onnx", model), ("run", fp32_run)):
        assert main(["detect", "predict", str(predictor), str(image), "--out", str(tmp_path / name)]) == 0
        with open(tmp_path / name / f"{image.stem}_candidates.csv", newline="") as handle:
            found[name] = [(float(r["i"]), float(r["j"]), float(r["score"])) for r in csv.DictReader(handle)]
    assert found["onnx"] and len(found["onnx"]) == len(found["run"])  # the run's operating threshold travelled
    np.testing.assert_allclose(np.array(found["onnx"]), np.array(found["run"]), atol=0.011)  # CSVs round to 0.01
