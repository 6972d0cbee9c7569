"""The classify commands end to end on real Br35H images, through the same entry point users run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medlearn.cli.main import main

TRAIN_PER_CLASS = 36
TEST_PER_CLASS = 12


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def manifests(br35h_root: Path, tmp_path_factory) -> dict[str, Path]:
    """Train/test CSVs over disjoint Br35H files; train paths are relative to the CSV's folder."""
    folder = tmp_path_factory.mktemp("manifests")
    images = folder / "images"
    train_rows, test_rows = [], []
    for label in ("no", "yes"):
        files = sorted((br35h_root / label).glob("*.jpg"))[: TRAIN_PER_CLASS + TEST_PER_CLASS]
        (images / label).mkdir(parents=True)
        for i, file in enumerate(files):
            target = images / label / file.name
            target.write_bytes(file.read_bytes())
            rel = target.relative_to(folder)
            (train_rows if i < TRAIN_PER_CLASS else test_rows).append((str(rel), label))
    return {
        "train": _write_csv(folder / "train.csv", train_rows),
        "test": _write_csv(folder / "test.csv", [(str(folder / p), lab) for p, lab in test_rows]),
        "images": images,
    }


def _train(manifests, out: Path, *extra: str) -> int:
    return main(
        [
            "classify",
            "train",
            "--data",
            str(manifests["train"]),
            "--out",
            str(out),
            "--model",
            "cls-shallow",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--image-size",
            "64",
            "--modality",
            "MR",
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def trained_run(manifests, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "shallow"
    assert _train(manifests, out) == 0
    return out


def test_train_writes_a_complete_run_directory(trained_run: Path):
    for name in (
        "config.yaml",
        "split.csv",
        "metrics.csv",
        "metrics.json",
        "train.log",
        "report.html",
        "calibration.yaml",
        "checkpoints/best/model.safetensors",
        "checkpoints/last/state.pt",
    ):
        assert (trained_run / name).exists(), name
    history = json.loads((trained_run / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all("val_loss" in row and "val_auc" in row for row in history)
    with open(trained_run / "split.csv") as handle:
        parts = {row["split"] for row in csv.DictReader(handle)}
    assert parts == {"train", "val", "test"}  # validation and a test share (the report's) carved from the CSV
    html = (trained_run / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 5


def test_evaluate_writes_required_metrics(trained_run: Path, manifests, tmp_path: Path):
    out = tmp_path / "metrics.json"
    assert main(["classify", "evaluate", str(trained_run), "--data", str(manifests["test"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    for key in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity"):
        assert 0.0 <= metrics[key] <= 1.0, key
        low, high = metrics[f"{key}_ci"]
        assert low <= metrics[key] + 1e-9 and metrics[key] <= high + 1e-9
    assert metrics["positive_class"] == "yes"
    assert metrics["n"] == 2 * TEST_PER_CLASS
    assert len(metrics["per_case"]) == 2 * TEST_PER_CLASS


def test_positive_option_swaps_sensitivity_and_specificity(trained_run: Path, manifests, tmp_path: Path):
    default, swapped = tmp_path / "a.json", tmp_path / "b.json"
    main(["classify", "evaluate", str(trained_run), "--data", str(manifests["test"]), "--json", str(default)])
    main(
        [
            "classify",
            "evaluate",
            str(trained_run),
            "--data",
            str(manifests["test"]),
            "--json",
            str(swapped),
            "--positive",
            "no",
        ]
    )
    a, b = json.loads(default.read_text()), json.loads(swapped.read_text())
    assert a["sensitivity"] == pytest.approx(b["specificity"])
    assert a["specificity"] == pytest.approx(b["sensitivity"])


def test_predict_skips_bad_files_and_lists_them(trained_run: Path, manifests, tmp_path: Path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((manifests["images"] / "yes").glob("*.jpg"))[:3]
    for file in good:
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "broken.jpg").write_bytes(good[0].read_bytes()[:200])
    out = tmp_path / "pred.csv"
    assert main(["classify", "predict", str(trained_run), str(folder), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert {"path", "prediction", "prob_no", "prob_yes"} <= set(rows[0])
    for row in rows:
        assert float(row["prob_no"]) + float(row["prob_yes"]) == pytest.approx(1.0, abs=1e-4)
    assert "broken.jpg" in capsys.readouterr().err

    strict_out = tmp_path / "strict.csv"
    assert main(["classify", "predict", str(trained_run), str(folder), "--out", str(strict_out), "--strict"]) == 2
    assert not strict_out.exists()


def test_resume_reaches_the_uninterrupted_result(manifests, tmp_path: Path, monkeypatch):
    """Interrupt after epoch 2 (a crash in epoch 3), resume: weights equal those of a straight run."""
    from medlearn.engine import trainer as trainer_module

    straight = tmp_path / "straight"
    assert _train(manifests, straight) == 0

    interrupted = tmp_path / "interrupted"
    original = trainer_module.Trainer._train_epoch

    def crash_in_epoch_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", crash_in_epoch_3)
    assert _train(manifests, interrupted) == 130
    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", original)
    assert not (interrupted / "report.html").exists()
    assert main(["classify", "train", "--resume", str(interrupted), "--quiet"]) == 0

    a = load_file(straight / "checkpoints/last/model.safetensors")
    b = load_file(interrupted / "checkpoints/last/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_manifest_is_one_line_error_and_no_run_dir(tmp_path: Path, capsys):
    manifest = _write_csv(tmp_path / "bad.csv", [("missing/one.png", "yes"), ("missing/two.png", "no")])
    out = tmp_path / "run"
    assert main(["classify", "train", "--data", str(manifest), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_existing_run_is_not_overwritten(trained_run: Path, manifests, capsys):
    assert _train(manifests, trained_run) == 2
    assert "--resume" in capsys.readouterr().err


def test_training_skips_bad_images_and_reports_them(manifests, tmp_path: Path):
    """A manifest with a truncated JPG and a PNG whose header claims 10^10 pixels still trains on the rest."""
    import struct
    import zlib

    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(next((manifests["images"] / "no").glob("*.jpg")).read_bytes()[:400])
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    rows = list(csv.reader(open(manifests["train"])))[1:]  # noqa: SIM115
    rows = [(str(manifests["train"].parent / p), label) for p, label in rows]
    manifest = _write_csv(tmp_path / "with_bad.csv", [*rows, (str(truncated), "no"), (str(bomb), "yes")])
    out = tmp_path / "run"
    short = ["--model", "cls-shallow", "--epochs", "1", "--image-size", "64", "--quiet"]
    code = main(["classify", "train", "--data", str(manifest), "--out", str(out), *short])
    assert code == 0
    summary = json.loads((out / "data_summary.json").read_text())
    assert sorted(Path(s["path"]).name for s in summary["skipped"]) == ["bomb.png", "truncated.jpg"]
    assert "truncated.jpg" in (out / "report.html").read_text()

    strict_out = tmp_path / "strict"
    code = main(["classify", "train", "--data", str(manifest), "--out", str(strict_out), *short, "--strict"])
    assert code == 2
    assert not strict_out.exists()


def test_outputs_are_readable_by_others(trained_run: Path):
    """Atomic writes go through mkstemp (0600); finished files must get the usual permissions."""
    import os
    import stat

    mode = stat.S_IMODE(os.stat(trained_run / "report.html").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


# ------------------------------------------------------------------------------------------------
# the classical baseline beside the model (issue 12)


def _evaluate_json(run: Path, manifests, out: Path) -> dict:
    assert main(["classify", "evaluate", str(run), "--data", str(manifests["test"]), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _copy_run(run: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, target))


def test_training_stores_a_json_baseline_that_evaluate_scores_beside_the_model(
    trained_run: Path, manifests, tmp_path: Path, capsys
):
    from medlearn.evaluation.baselines.classification import NAME

    stored = (trained_run / "baseline.json").read_text()
    assert json.loads(stored)["classes"] == ["no", "yes"]
    (held_out,) = trained_run.glob("*_metrics.json")  # test_metrics.json, or val_metrics.json without a test part
    assert NAME in json.loads(held_out.read_text())["baseline"]
    capsys.readouterr()
    metrics = _evaluate_json(trained_run, manifests, tmp_path / "m.json")
    scores = metrics["baseline"][NAME]
    for key in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1"):
        assert 0.0 <= scores[key] <= 1.0, key
    comparison = metrics["baseline_comparison"]
    assert comparison["metric"] == "balanced_accuracy" and comparison["baseline_name"] == NAME
    assert comparison["model"] == metrics["balanced_accuracy"]
    assert comparison["baseline"] == scores["balanced_accuracy"]
    assert comparison["beaten"] == (metrics["balanced_accuracy"] > scores["balanced_accuracy"])
    out = capsys.readouterr().out
    assert f"classical baseline ({NAME}): accuracy {scores['accuracy']:.4f}" in out
    assert comparison["text"] in out
    assert "Classical baseline" in (trained_run / "evaluation-test.html").read_text()
    assert (trained_run / "baseline.json").read_text() == stored  # the training-time baseline, not a new fit


def test_an_old_run_gets_its_baseline_fitted_from_its_split(trained_run: Path, manifests, tmp_path: Path, capsys):
    reference = _evaluate_json(trained_run, manifests, tmp_path / "reference.json")
    old = _copy_run(trained_run, tmp_path / "old")
    (old / "baseline.json").unlink()
    capsys.readouterr()
    metrics = _evaluate_json(old, manifests, tmp_path / "m.json")
    assert (old / "baseline.json").is_file()
    assert metrics["baseline"] == reference["baseline"]  # same training images, same preprocessing: same baseline
    assert "fitted now" in metrics["baseline_note"] and "fitted now" in capsys.readouterr().out


def test_without_baseline_or_split_evaluation_continues_with_a_note(
    trained_run: Path, manifests, tmp_path: Path, capsys
):
    old = _copy_run(trained_run, tmp_path / "old")
    (old / "baseline.json").unlink()
    (old / "split.csv").unlink()
    capsys.readouterr()
    metrics = _evaluate_json(old, manifests, tmp_path / "m.json")
    assert metrics["baseline"] == {} and metrics["baseline_comparison"] is None
    assert "split.csv" in metrics["baseline_note"]
    assert metrics["baseline_note"] in capsys.readouterr().out
    assert "split.csv" in (old / "evaluation-test.html").read_text()
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_a_model_worse_than_its_baseline_is_called_out(trained_run: Path, manifests, tmp_path: Path, capsys):
    """An untrained network (all weights zero: the same answer for every image) does not beat the baseline."""
    from safetensors.torch import save_file

    blank = _copy_run(trained_run, tmp_path / "blank")
    weights = blank / "checkpoints/best/model.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in load_file(weights).items()}, weights)
    capsys.readouterr()
    metrics = _evaluate_json(blank, manifests, tmp_path / "m.json")
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)
    assert metrics["baseline_comparison"]["beaten"] is False
    assert "does NOT beat its classical baseline" in capsys.readouterr().out
    html = (blank / "evaluation-test.html").read_text()
    assert "<strong>Warning:</strong> The model does NOT beat its classical baseline" in html


def test_evaluating_on_the_runs_own_training_images_is_called_out(trained_run: Path, manifests, capsys):
    """The training CSV given as test data: every image is one the model saw, and evaluate says so."""
    out = trained_run.parent / "leaky.json"
    assert main(["classify", "evaluate", str(trained_run), "--data", str(manifests["train"]), "--json", str(out)]) == 0
    overlap = json.loads(out.read_text())["overlap_with_training"]
    assert overlap["checked"] and overlap["same_file"] > 0.6 * overlap["images"]
    assert overlap["near_duplicate_of_training"] >= overlap["same_file"]
    assert "(near-)copies of the run's training/validation images" in capsys.readouterr().err
    clean = trained_run.parent / "clean.json"
    assert main(["classify", "evaluate", str(trained_run), "--data", str(manifests["test"]), "--json", str(clean)]) == 0
    assert json.loads(clean.read_text())["overlap_with_training"]["same_file"] == 0


def test_a_run_records_its_model_defaults_so_a_later_default_change_keeps_it_loadable(trained_run: Path, monkeypatch):
    import yaml

    from medlearn.apps.classification.model import TrainedClassifier
    from medlearn.models import shallow

    recorded = yaml.safe_load((trained_run / "config.yaml").read_text())["classification"]["model_kwargs"]
    assert recorded == {"spatial_dims": 2}  # the factory's keyword defaults (in/out sizes come from the data)
    monkeypatch.setattr(shallow.cls_shallow, "__defaults__", (1, 2, 3))  # a release makes 3D the default
    model = TrainedClassifier.from_run_dir(trained_run).model  # still the 2D network the weights belong to
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def test_export_to_onnx_predicts_like_the_run_without_its_folder(trained_run: Path, manifests, tmp_path: Path, capsys):
    model = tmp_path / "model.onnx"
    command = ["export", str(trained_run), "--out", str(model), "--check-data", str(manifests["test"])]
    assert main(command) == 0
    assert "max |exported - trained|" in capsys.readouterr().out
    images = sorted(str(p) for p in (manifests["images"] / "yes").glob("*.jpg"))[:4]
    assert main(["classify", "predict", str(model), *images, "--out", str(tmp_path / "onnx.csv")]) == 0
    assert main(["classify", "predict", str(trained_run), *images, "--out", str(tmp_path / "run.csv")]) == 0
    exported, original = (list(csv.DictReader((tmp_path / f"{n}.csv").open())) for n in ("onnx", "run"))
    assert [r["prediction"] for r in exported] == [r["prediction"] for r in original]
    for a, b in zip(exported, original, strict=True):  # the run infers in bf16 where the CPU has it, ONNX in fp32
        assert abs(float(a["prob_yes"]) - float(b["prob_yes"])) < 0.02
    assert main(["export", str(trained_run), "--out", str(tmp_path / "model.pt2"), "--format", "pt2"]) == 0
    assert (tmp_path / "model.pt2").is_file() and (tmp_path / "model.pt2.json").is_file()
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not a medlearn run folder" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("task: registration\n")
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not supported yet" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
