"""The enhance commands end to end on real images (Br35H brain MRI slices, pyradiomics brain MR volumes),
through the same entry point users run: train -> evaluate -> apply, SR, resume, and refusals of bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from PIL import Image

from medlearn.apps.enhancement.apply import read_enhancement_mark
from medlearn.cli.main import main
from medlearn.io import load, save
from medlearn.io.geometry import image_from_affine

SIDE = 96
#: Tiny models and short validation so that a run takes seconds on two shared CPU cores.
FAST = {
    "enhancement": {"model_kwargs": {"depth": 4, "width": 16}, "val_slices": 2, "val_max_size": SIDE},
    "training": {"lr": 3e-3, "warmup_epochs": 0.2, "num_threads": 1},
}
FAST_SR = {
    "enhancement": {"model_kwargs": {"width": 16}, "val_slices": 1, "val_max_size": SIDE},
    "training": {"lr": 3e-3, "warmup_epochs": 0.2, "num_threads": 1},
}
COMMON = ["--batch-size", "8", "--patch-size", "48", "--quiet"]


def _write_csv(path: Path, names: list[str]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([name] for name in names)
    return path


@pytest.fixture(scope="module")
def data(br35h_root: Path, shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Br35H slices resized to 96x96 (one kept RGB: mixed channel counts) and brain MR volume crops;
    disjoint train and test files, paths relative to the CSVs."""
    folder = tmp_path_factory.mktemp("enhance-data")
    files = sorted((br35h_root / "no").glob("*.jpg"))[::60][:8]
    names = []
    for i, file in enumerate(files):
        with Image.open(file) as image:
            mode = "RGB" if i == 0 else "L"
            image.convert(mode).resize((SIDE, SIDE), Image.BICUBIC).save(folder / f"{file.stem}.png")
        names.append(f"{file.stem}.png")
    for case in ("brain1", "brain2"):
        volume = load(shared_data / "pyradiomics" / f"{case}_image.nrrd", modality="MR")
        crop = image_from_affine(volume.array[:, 80:176, 80:176, 9:13].copy(), volume.affine, modality="MR")
        names.append(str(save(crop, folder / f"{case}_crop.nrrd").name))
    (folder / "fast.yaml").write_text(yaml.safe_dump(FAST))
    (folder / "fast_sr.yaml").write_text(yaml.safe_dump(FAST_SR))
    return {
        "folder": folder,
        "train": _write_csv(folder / "train.csv", names[:6] + ["brain1_crop.nrrd"]),
        "test": _write_csv(folder / "test.csv", names[6:8] + ["brain2_crop.nrrd"]),
        "config": folder / "fast.yaml",
        "config_sr": folder / "fast_sr.yaml",
    }


def _train(data: dict, out: Path, *extra: str, config: str = "config") -> int:
    args = ["enhance", "train", "--data", str(data["train"]), "--out", str(out), "--config", str(data[config])]
    return main([*args, *COMMON, *extra])


@pytest.fixture(scope="module")
def denoise_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dncnn"
    flags = ["--task", "denoise", "--noise", "gaussian:0.1", "--epochs", "2", "--batches-per-epoch", "12"]
    assert _train(data, out, *flags) == 0
    return out


def test_train_writes_config_checkpoints_examples_and_report(denoise_run: Path):
    config = yaml.safe_load((denoise_run / "config.yaml").read_text())
    assert config["task"] == "enhancement"
    assert config["enhancement"]["degradation"] == "gaussian:0.1" and config["enhancement"]["model"] == "dncnn"
    assert config["enhancement"]["model_kwargs"] == {"depth": 4, "width": 16}
    assert (denoise_run / "checkpoints/best/model.safetensors").is_file()
    assert len(json.loads((denoise_run / "metrics.json").read_text())) == 2
    report = (denoise_run / "report.html").read_text()
    for section in ("Comparison", "Examples", "Per-image results", "Training curves"):
        assert section in report
    assert len(list((denoise_run / "examples").glob("*.png"))) >= 1
    # a few seconds of training on real slices already beat the noisy input
    validation = json.loads((denoise_run / "val_metrics.json").read_text())
    assert validation["psnr"] > validation["degraded"]["psnr"] + 0.5


def test_evaluate_writes_model_input_and_baseline_metrics(denoise_run: Path, data, tmp_path: Path):
    out = tmp_path / "metrics.json"
    args = ["enhance", "evaluate", str(denoise_run), "--data", str(data["test"]), "--json", str(out)]
    assert main([*args, "--seed", "5", "--max-slices", "2"]) == 0
    metrics = json.loads(out.read_text())
    assert {"psnr", "ssim", "per_image", "degraded", "baselines", "noise", "seed", "n_images"} <= set(metrics)
    assert metrics["noise"] == "gaussian:0.1" and metrics["seed"] == 5 and metrics["n_images"] == 3
    assert set(metrics["baselines"]) == {"nl_means", "bilateral", "tv"}
    assert all(set(v) == {"psnr", "ssim"} for v in metrics["baselines"].values())
    assert len(metrics["per_image"]) == 3 and metrics["n_slices"] == 4  # 2 images + 2 slices of the volume
    assert metrics["psnr"] > metrics["degraded"]["psnr"] + 0.5  # held-out files, degraded with another seed
    assert (denoise_run / "evaluation-test.html").is_file()
    again = tmp_path / "again.json"
    assert main([*args[:-1], str(again), "--seed", "5", "--max-slices", "2", "--no-baselines"]) == 0
    assert json.loads(again.read_text())["degraded"] == metrics["degraded"]  # the seed fixes the test noise


def test_apply_writes_each_input_in_its_format_marked_as_enhanced(denoise_run: Path, data, tmp_path: Path):
    nrrd_volume = data["folder"] / "brain2_crop.nrrd"
    png = sorted(data["folder"].glob("*.png"))[-1]
    original = load(nrrd_volume)
    nifti_volume = save(image_from_affine(original.array.astype(np.float32), original.affine, modality="MR"),
                        tmp_path / "float.nii.gz")  # fmt: skip
    out = tmp_path / "out"
    assert (
        main(["enhance", "apply", str(denoise_run), str(nrrd_volume), str(png), str(nifti_volume), "--out", str(out)])
        == 0
    )
    result = load(out / "brain2_crop_enhanced.nrrd")
    assert result.array.shape == original.array.shape and result.array.dtype == original.array.dtype
    assert np.allclose(result.affine, original.affine) and result.modality == "MR"
    assert 0 < np.abs(result.array.astype(float) - original.array).mean() < 0.1 * original.array.max()
    assert read_enhancement_mark(out / "brain2_crop_enhanced.nrrd")["model"] == "dncnn"
    assert read_enhancement_mark(out / f"{png.stem}_enhanced.png")["degradation"] == "gaussian:0.1"
    assert load(out / f"{png.stem}_enhanced.png").array.shape == (1, SIDE, SIDE)
    nifti = load(out / "float_enhanced.nii.gz")
    assert nifti.array.dtype == np.float32 and nifti.tags.get("enhanced") is True
    assert read_enhancement_mark(out / "float_enhanced.nii.gz") is not None
    assert read_enhancement_mark(nrrd_volume) is None
    rows = list(csv.DictReader((out / "enhanced.csv").read_text().splitlines()))
    assert len(rows) == 3


def test_super_resolution_trains_evaluates_against_bicubic_and_upsamples(data, tmp_path: Path):
    run = tmp_path / "sr"
    flags = ["--task", "sr", "--scale", "2", "--model", "sr-espcn", "--epochs", "1", "--batches-per-epoch", "4"]
    assert _train(data, run, *flags, config="config_sr") == 0
    out = tmp_path / "sr.json"
    assert main(["enhance", "evaluate", str(run), "--data", str(data["test"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["noise"] == "downsample:2" and set(metrics["baselines"]) == {"bicubic"}
    assert metrics["degraded"] == metrics["baselines"]["bicubic"]
    source = data["folder"] / "brain2_crop.nrrd"
    assert main(["enhance", "apply", str(run), str(source), "--out", str(tmp_path / "up")]) == 0
    upsampled, original = load(tmp_path / "up" / "brain2_crop_enhanced.nrrd"), load(source)
    assert upsampled.spatial_shape == (2 * SIDE, 2 * SIDE, 4)
    assert np.allclose(upsampled.spacing, (original.spacing[0] / 2, original.spacing[1] / 2, original.spacing[2]))


def test_resume_continues_a_run_stopped_by_its_budget(data, tmp_path: Path):
    run = tmp_path / "parts"
    fixed = {**FAST, "training": {**FAST["training"], "fit_schedule_to_budget": False}}  # the budget only interrupts
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(fixed))
    config = ["--config", str(tmp_path / "fixed.yaml")]
    args = ["--noise", "gaussian:0.05", "--epochs", "2", "--batches-per-epoch", "2", *config]
    assert _train(data, run, *args, "--max-minutes", "0.0001") == 0  # stops after epoch 1
    assert len(json.loads((run / "metrics.json").read_text())) == 1
    assert main(["enhance", "train", "--resume", str(run), "--quiet"]) == 0
    history = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def _write_bad(folder: Path, kind: str) -> str:
    if kind == "corrupt.png":
        (folder / kind).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    elif kind == "nan.nii.gz":
        array = np.random.default_rng(0).random((64, 64), dtype=np.float32)
        array[3, 3] = np.nan
        nib.save(nib.Nifti1Image(array, np.eye(4)), folder / kind)
    elif kind == "tiny.png":
        Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(folder / kind)
    return kind


@pytest.mark.parametrize("bad", ["corrupt.png", "nan.nii.gz", "tiny.png"])
def test_unusable_training_files_are_refused_by_name(data, tmp_path: Path, capsys, bad):
    names = [_write_bad(tmp_path, bad), *(str(p) for p in sorted(data["folder"].glob("*.png"))[:2])]
    csv_path = _write_csv(tmp_path / "bad.csv", names)
    flags = ["--noise", "gaussian:0.05", "--epochs", "1", "--batches-per-epoch", "1", *COMMON]
    code = main(["enhance", "train", "--data", str(csv_path), "--out", str(tmp_path / "run"), *flags])
    assert code == 2
    assert bad in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--noise", "gaussian:abc"], "gaussian:abc"),
        (["--noise", "speckle:0.1"], "speckle:0.1"),
        (["--task", "sr"], "--scale"),
        (["--task", "sr", "--scale", "3"], "2 or 4"),
        (["--task", "denoise"], "--noise"),
        (["--noise", "gaussian:0.05", "--model", "sr-resnet"], "sr-resnet"),
    ],
)
def test_bad_task_flags_are_one_line_errors(data, tmp_path: Path, capsys, flags, message):
    fast = ["--epochs", "1", "--batches-per-epoch", "1", "--quiet"]
    code = main(["enhance", "train", "--data", str(data["train"]), "--out", str(tmp_path / "run"), *flags, *fast])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_run_of_another_task_or_architecture_is_refused(denoise_run: Path, data, tmp_path: Path, capsys):
    other = tmp_path / "segmentation-run"
    other.mkdir()
    (other / "config.yaml").write_text("task: segmentation\n")
    assert main(["enhance", "evaluate", str(other), "--data", str(data["test"])]) == 2
    err = capsys.readouterr().err
    assert "not an enhancement run" in err and "segmentation-run" in err

    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(denoise_run, changed)
    config = yaml.safe_load((changed / "config.yaml").read_text())
    config["enhancement"]["model_kwargs"]["width"] = 24
    (changed / "config.yaml").write_text(yaml.safe_dump(config))
    assert (
        main(["enhance", "apply", str(changed), str(data["folder"] / "brain2_crop.nrrd"), "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "does not match the model architecture" in err and "model.safetensors" in err


@pytest.mark.parametrize(
    ("name", "scale"), [("dncnn", 1), ("red-unet", 1), ("sr-resnet", 2), ("sr-resnet", 4), ("sr-espcn", 2)]
)
def test_enhancement_models_start_as_the_identity_or_bicubic(name, scale):
    """Odd sizes work; a fresh model returns its input (denoisers) or its bicubic upsampling (SR)."""
    import torch
    import torch.nn.functional as F

    from medlearn.models import create_model, list_models

    assert name in {entry.name for entry in list_models("enhancement")}
    model = create_model(name, **({"scale": scale} if scale > 1 else {})).eval()
    x = torch.rand(1, 1, 37, 41)
    with torch.no_grad():
        y = model(x)
    expected = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert y.shape == (1, 1, 37 * scale, 41 * scale)
    assert torch.allclose(y, expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# the common baseline keys and the plain-words comparison (issue 12)


def test_evaluate_writes_the_common_baseline_keys_and_prints_the_comparison(
    denoise_run: Path, data, tmp_path: Path, capsys
):
    out = tmp_path / "metrics.json"
    args = ["enhance", "evaluate", str(denoise_run), "--data", str(data["test"]), "--max-slices", "1"]
    capsys.readouterr()
    assert main([*args, "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["baseline"] == metrics["baselines"]  # the old key stays for the benchmarks
    assert set(metrics["baseline"]) == {"nl_means", "bilateral", "tv"}
    comparison = metrics["baseline_comparison"]
    assert comparison["metric"] == "psnr" and comparison["baseline_name"] == metrics["best_baseline"]
    assert comparison["model"] == metrics["psnr"]
    assert comparison["baseline"] == metrics["baseline"][metrics["best_baseline"]]["psnr"]
    assert comparison["beaten"] == (metrics["gain_over_best_baseline_db"] > 0)
    assert comparison["text"] in capsys.readouterr().out

    bare = tmp_path / "bare.json"
    assert main([*args, "--json", str(bare), "--no-baselines"]) == 0
    without = json.loads(bare.read_text())
    assert without["baseline"] == {} and without["baseline_comparison"] is None


def test_a_denoiser_that_does_not_beat_the_classical_baselines_is_called_out(
    denoise_run: Path, data, tmp_path: Path, capsys
):
    """All weights zero: the residual denoiser returns its noisy input, which every classical denoiser beats."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    blank = Path(shutil.copytree(denoise_run, tmp_path / "blank"))
    weights = blank / "checkpoints/best/model.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in load_file(weights).items()}, weights)
    out, report = tmp_path / "metrics.json", tmp_path / "report.html"
    capsys.readouterr()
    args = ["enhance", "evaluate", str(blank), "--data", str(data["test"]), "--max-slices", "1"]
    assert main([*args, "--json", str(out), "--report", str(report)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["psnr"] == pytest.approx(metrics["degraded"]["psnr"])  # the identity
    assert metrics["baseline_comparison"]["beaten"] is False
    assert "does NOT beat its classical baseline" in capsys.readouterr().out
    assert "<strong>Warning:</strong> The model does NOT beat its classical baseline" in report.read_text()


def test_apply_never_overwrites_the_output_of_a_same_named_input(denoise_run: Path, data, tmp_path: Path):
    png = sorted(data["folder"].glob("*.png"))[-1]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(png.read_bytes())
    out = tmp_path / "out"
    assert (
        main(["enhance", "apply", str(denoise_run), str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    )
    assert sorted(p.name for p in out.glob("*.png")) == ["a__x_enhanced.png", "b__x_enhanced.png"]


def test_an_exported_onnx_network_enhances_a_volume_like_the_run(denoise_run: Path, data, tmp_path: Path):
    model = tmp_path / "dncnn.onnx"
    assert main(["export", str(denoise_run), "--out", str(model)]) == 0
    volume = data["folder"] / "brain2_crop.nrrd"  # its slices are not the 64-pixel example the export traced
    for name, predictor in (("onnx", model), ("run", denoise_run)):
        assert main(["enhance", "apply", str(predictor), str(volume), "--out", str(tmp_path / name)]) == 0
    exported, original = (
        load(tmp_path / name / "brain2_crop_enhanced.nrrd").array.astype(float) for name in ("onnx", "run")
    )
    assert exported.shape == original.shape
    assert np.abs(exported - original).max() <= 0.01 * np.abs(original).max()  # bf16 run vs fp32 ONNX
    assert read_enhancement_mark(tmp_path / "onnx" / "brain2_crop_enhanced.nrrd")["model"] == "dncnn"
