"""``medlearn generate`` end to end on real Br35H images: train (with grids, validation FID, report), resume,
sample files marked synthetic, evaluate offline, and the bad inputs a user will hit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medlearn.cli.main import main
from medlearn.io import load

PER_CLASS = 48


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def manifests(br35h_root: Path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("generate")
    train, real = [], []
    for label in ("no", "yes"):
        files = sorted((br35h_root / label).glob("*.jpg"))
        train += [(str(f), label) for f in files[:PER_CLASS]]
        real += [(str(f), label) for f in files[PER_CLASS : PER_CLASS + 16]]
    return {
        "train": _write_csv(folder / "train.csv", train),
        "real": _write_csv(folder / "real.csv", real),
        "few": _write_csv(folder / "few.csv", train[:10]),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def trained_run(manifests, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "gan"
    args = ["generate", "train", "--data", str(manifests["train"]), "--out", str(run), "--size", "32"]
    args += ["--epochs", "2", "--batch-size", "16", "--quiet", "--set", "val_fraction=0.25", "--set", "width=8"]
    args += ["--set", "min_images=32"]
    assert main(args) == 0
    return run


def test_train_writes_grids_validation_fid_and_report(trained_run: Path):
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["task"] == "generation" and config["classes"] == ["no", "yes"]
    assert (trained_run / "samples" / "epoch_0001.png").is_file() and (trained_run / "samples" / "latest.png").is_file()
    grid = np.asarray(Image.open(trained_run / "samples" / "latest.png"))
    assert grid.shape == (8 * 32 + 7 * 2, 8 * 32 + 7 * 2)  # 64 samples of 32 px with 2 px gaps
    history = json.loads((trained_run / "metrics.json").read_text())
    assert "train_g_loss" in history[0] and "val_fid" in history[-1]
    metrics = json.loads((trained_run / "val_metrics.json").read_text())
    assert {"fid", "kid", "precision", "recall", "ms_ssim", "ms_ssim_real", "feature_network"} <= set(metrics)
    assert metrics["synthetic"] is True and metrics["fid"] > 0
    report = (trained_run / "report.html").read_text()
    assert "SYNTHETIC" in report and "fixed random conv net" in report


def test_sample_writes_files_marked_synthetic_with_a_manifest(trained_run: Path, tmp_path: Path):
    out = tmp_path / "samples"
    assert main(["generate", "sample", str(trained_run), "--out", str(out), "--count", "4", "--label", "yes"]) == 0
    rows = list(csv.DictReader((out / "samples.csv").read_text().splitlines()))
    assert [r["label"] for r in rows] == ["yes"] * 4
    image = load(out / rows[0]["path"])
    assert image.tags["synthetic"] is True and image.array.shape == (1, 32, 32)
    nifti = tmp_path / "nifti"
    assert (
        main(["generate", "sample", str(trained_run), "--out", str(nifti), "--count", "2", "--format", "nii.gz"]) == 0
    )
    assert load(next(nifti.glob("*.nii.gz"))).tags["synthetic"] is True
    # same seed, same images
    again = tmp_path / "again"
    main(["generate", "sample", str(trained_run), "--out", str(again), "--count", "4", "--label", "yes"])
    assert np.array_equal(load(again / rows[0]["path"]).array, image.array)


def test_evaluate_writes_the_distances(trained_run: Path, manifests, tmp_path: Path):
    out = tmp_path / "metrics.json"
    assert main(["generate", "evaluate", str(trained_run), "--data", str(manifests["real"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    for key in ("fid", "kid", "ms_ssim", "ms_ssim_real", "precision", "recall"):
        assert isinstance(metrics[key], float), key
    assert metrics["n_real"] == metrics["n_fake"] == 32
    assert (trained_run / "evaluation-real.html").is_file()


def test_resume_continues_the_recorded_run(trained_run: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["training"]["epochs"] = 3
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["generate", "train", "--resume", str(copy), "--quiet"]) == 0
    assert [row["epoch"] for row in json.loads((copy / "metrics.json").read_text())] == [1, 2, 3]


def test_bad_inputs_are_clear_errors(manifests, trained_run: Path, tmp_path: Path, capsys):
    few = ["generate", "train", "--data", str(manifests["few"]), "--out", str(tmp_path / "few"), "--quiet"]
    assert main(few) == 2
    assert "at least 64 training images" in capsys.readouterr().err
    assert not (tmp_path / "few").exists()  # no half-made run folder

    grey = manifests["folder"] / "grey.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)).save(grey)
    rows = list(csv.reader(manifests["train"].read_text().splitlines()))[1:] + [[str(grey), "no"]]
    mixed = _write_csv(tmp_path / "mixed.csv", [tuple(r) for r in rows])
    args = ["generate", "train", "--data", str(mixed), "--out", str(tmp_path / "rgb"), "--channels", "3", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "grey.png" in err and "colour" in err

    assert main(["generate", "sample", str(trained_run), "--out", str(tmp_path / "s"), "--label", "maybe"]) == 2
    assert "unknown class 'maybe'" in capsys.readouterr().err

    not_gan = tmp_path / "not_gan"
    not_gan.mkdir()
    (not_gan / "config.yaml").write_text("task: classification\n")
    assert main(["generate", "evaluate", str(not_gan), "--data", str(manifests["real"])]) == 2
    assert "not an image-synthesis run" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused(trained_run: Path, tmp_path: Path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["generation"]["width"] = 16  # the weights were trained at width 8
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["generate", "sample", str(other), "--out", str(tmp_path / "s")]) == 2
    assert "does not match the model architecture" in capsys.readouterr().err


def test_study_runs_with_the_conditional_gan(manifests, tmp_path: Path):
    out = tmp_path / "study"
    args = ["generate", "study", "--data", str(manifests["train"]), "--out", str(out), "--fractions", "0.5,1"]
    args += ["--seeds", "1", "--arms", "classic,gan", "--gan-minutes", "0.02", "--image-size", "64"]
    args += ["--epochs", "1", "--min-steps", "2", "--quiet"]
    assert main(args) == 0
    study = json.loads((out / "study.json").read_text())
    arms = {(row["arm"], row["fraction"]) for row in study["runs"]}
    assert arms == {("classic", 0.5), ("classic", 1.0), ("gan", 0.5), ("gan", 1.0)}
    gan_runs = list((out / "synthesizer").rglob("config.yaml"))
    assert len(gan_runs) == 2  # one conditional GAN per labelled subset
    assert yaml.safe_load(gan_runs[0].read_text())["classes"] == ["0", "1"]
    assert (out / "report.html").is_file()


def test_evaluate_measures_the_classical_pca_gaussian_baseline_beside_the_generator(
    trained_run: Path, manifests, tmp_path: Path, capsys
):
    assert (trained_run / "baseline.npz").is_file()  # fitted on the training images when training started
    out = tmp_path / "metrics.json"
    assert main(["generate", "evaluate", str(trained_run), "--data", str(manifests["real"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    scores = metrics["baseline"]["pca-gaussian"]
    assert scores["fid"] > 0 and 0 <= scores["recall"] <= 1
    comparison = metrics["baseline_comparison"]
    assert comparison["metric"] == "fid" and comparison["higher_is_better"] is False
    assert comparison["beaten"] == (metrics["fid"] < scores["fid"]) and comparison["text"] in capsys.readouterr().out


def test_the_pca_gaussian_baseline_samples_each_class_around_its_mean(tmp_path: Path):
    import numpy as np

    from medlearn.evaluation.baselines.generation import PCAGaussian, fit_pca_gaussian

    rng = np.random.default_rng(0)
    dark = rng.normal(0.2, 0.02, size=(30, 1, 8, 8)).clip(0, 1)
    bright = rng.normal(0.8, 0.02, size=(30, 1, 8, 8)).clip(0, 1)
    baseline = fit_pca_gaussian(np.concatenate([dark, bright]), np.repeat([0, 1], 30), ["dark", "bright"])
    samples = baseline.sample(40, np.repeat([0, 1], 20), seed=1)
    assert samples.shape == (40, 1, 8, 8)
    assert abs(samples[:20].mean() - 0.2) < 0.02 and abs(samples[20:].mean() - 0.8) < 0.02
    again = PCAGaussian.load(baseline.save(tmp_path / "b.npz"))
    np.testing.assert_array_equal(
        again.sample(5, np.zeros(5, int), seed=2), baseline.sample(5, np.zeros(5, int), seed=2)
    )
