"""nnU-Net v2 as a reference on the 2D nuclei split (``segmentation_data.nuclei_split``), under a time budget.

Runs with medlearn's Python but drives nnU-Net in its own venv (``WORKDIR/venv``), so nnU-Net never becomes
a dependency of medlearn. Steps: install (once), convert the split to nnU-Net's raw format
(Dataset501_NucleiTiles, PNG through NaturalImage2DIO), ``nnUNetv2_plan_and_preprocess``, a ``splits_final.json``
whose fold 0 is exactly our train/val, ``nnUNetv2_train`` with the plain nnU-Net trainer stopped by a
wall-clock budget (``nnUNetTrainerBudget``, installed into nnU-Net's trainer folder), ``nnUNetv2_predict`` on
the test tiles (nnU-Net's default test-time mirroring kept), and scores with medlearn's segmentation metrics.

    .venv/bin/python benchmarks/nnunet_reference.py --minutes 10 --json benchmarks/results/nnunet.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segmentation_data import nuclei_split, read_split  # noqa: E402

DATASET_ID = 501
DATASET = f"Dataset{DATASET_ID}_NucleiTiles"
TRAINER = "nnUNetTrainerBudget"
BUDGET_FILE = "budget.json"  # in nnUNet_preprocessed/DATASET, read by the trainer
CURVE_FILE = "budget_curve.json"  # written by the trainer into its fold output folder
INSTALL = ["nnunetv2", "torch==2.13.0"]  # torch pinned: the CPU wheel on local disk, not a CUDA build

# Written into nnunetv2/training/nnUNetTrainer/ (top level: nnU-Net's class search imports the modules of that
# folder before recursing into variants/, so nothing that imports torchvision is touched before this is found).
TRAINER_SOURCE = '''\
"""nnU-Net's plain trainer, stopped by a wall-clock budget (written by medlearn's benchmarks/nnunet_reference.py).

The budget comes from budget.json in the preprocessed dataset folder ({"seconds", "iterations_per_epoch",
"val_iterations_per_epoch", "num_epochs"}); the environment variable nnUNet_budget_seconds overrides the seconds.
The clock starts at "start_unix" in budget.json (set just before nnUNetv2_train is launched) or else when the
trainer is created. Training iterations stop once the elapsed time plus a reserve for the epoch's validation
(the previous validation's duration; before the first, half a training step per validation step) reaches the
budget; that epoch is validated and checkpoint_final.pth written as usual (nnU-Net's final validation of the
validation cases follows, outside the budget). Each epoch's elapsed seconds and pseudo Dice go to
budget_curve.json in the fold folder.
"""

import json
import os
from os.path import isfile, join
from time import perf_counter, time

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainerBudget(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        config = {}
        if self.preprocessed_dataset_folder_base is not None:
            path = join(self.preprocessed_dataset_folder_base, "budget.json")
            if isfile(path):
                with open(path) as f:
                    config = json.load(f)
        self.budget_seconds = float(os.environ.get("nnUNet_budget_seconds", config.get("seconds", 600)))
        self.num_iterations_per_epoch = int(config.get("iterations_per_epoch", self.num_iterations_per_epoch))
        self.num_val_iterations_per_epoch = int(config.get("val_iterations_per_epoch",
                                                           self.num_val_iterations_per_epoch))
        self.num_epochs = int(config.get("num_epochs", self.num_epochs))  # large: the budget ends training
        start = config.get("start_unix")
        self._budget_start = perf_counter() - (time() - float(start) if start is not None else 0.0)
        self._val_reserve = None
        self.curve = []

    def _elapsed(self) -> float:
        return perf_counter() - self._budget_start

    def _write_curve(self) -> None:
        if self.local_rank != 0 or self.output_folder is None:
            return
        os.makedirs(self.output_folder, exist_ok=True)
        data = {"budget_seconds": self.budget_seconds, "iterations_per_epoch": self.num_iterations_per_epoch,
                "val_iterations_per_epoch": self.num_val_iterations_per_epoch, "num_epochs": self.num_epochs,
                "torch_threads": torch.get_num_threads(), "curve": self.curve}
        tmp = join(self.output_folder, "budget_curve.json.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, join(self.output_folder, "budget_curve.json"))

    def run_training(self):
        self.on_train_start()
        self.print_to_log_file(f"Wall-clock budget: {self.budget_seconds:.0f} s, {self.num_iterations_per_epoch} "
                               f"iterations per epoch, {torch.get_num_threads()} torch threads")
        out_of_time = False
        for epoch in range(self.current_epoch, self.num_epochs):
            self.on_epoch_start()
            self.on_train_epoch_start()
            train_start = perf_counter()
            train_outputs = []
            for batch_id in range(self.num_iterations_per_epoch):
                train_outputs.append(self.train_step(next(self.dataloader_train)))
                reserve = self._val_reserve
                if reserve is None:  # no validation measured yet: a validation step costs about half a training step
                    step = (perf_counter() - train_start) / len(train_outputs)
                    reserve = 0.5 * step * self.num_val_iterations_per_epoch
                if self._elapsed() + reserve >= self.budget_seconds:
                    out_of_time = True
                    break
            train_seconds = perf_counter() - train_start
            self.on_train_epoch_end(train_outputs)

            val_start = perf_counter()
            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = []
                for batch_id in range(self.num_val_iterations_per_epoch):
                    val_outputs.append(self.validation_step(next(self.dataloader_val)))
                self.on_validation_epoch_end(val_outputs)
            self._val_reserve = perf_counter() - val_start

            self.curve.append({
                "epoch": self.current_epoch,
                "seconds": round(self._elapsed(), 3),
                "pseudo_dice": float(self.logger.get_value("mean_fg_dice", step=-1)),
                "train_loss": float(self.logger.get_value("train_losses", step=-1)),
                "val_loss": float(self.logger.get_value("val_losses", step=-1)),
                "train_iterations": len(train_outputs),
                "train_seconds": round(train_seconds, 3),
                "val_seconds": round(self._val_reserve, 3),
                "lr": float(self.optimizer.param_groups[0]["lr"]),
            })
            self.on_epoch_end()  # logs the EMA pseudo Dice, saves checkpoint_best, increments current_epoch
            self.curve[-1]["ema_pseudo_dice"] = float(self.logger.get_value("ema_fg_dice", step=-1))
            self._write_curve()
            if out_of_time or self._elapsed() >= self.budget_seconds:
                self.print_to_log_file(f"Budget of {self.budget_seconds:.0f} s used up after "
                                       f"{len(self.curve)} epochs ({self._elapsed():.1f} s)")
                break

        self.on_train_end()  # writes checkpoint_final.pth, which nnUNetv2_predict uses by default
'''


def _log(message: str) -> None:
    print(f"[nnunet_reference] {message}", flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(name: str, cmd: list[str], env: dict[str, str], logs: Path) -> dict[str, float]:
    """Run one command with its output in ``logs/NAME.log``; wall-clock and CPU seconds (it and its children)."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    _log(f"{name}: {' '.join(cmd)}  (log: {log})")
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    with log.open("w") as f:
        result = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    timing = {"seconds": time.perf_counter() - wall0, "cpu_seconds": _children_cpu() - cpu0}
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise RuntimeError(f"{name} failed with exit code {result.returncode}; end of {log}:\n{tail}")
    _log(f"{name}: {timing['seconds']:.1f} s wall, {timing['cpu_seconds']:.1f} s CPU")
    return timing


def ensure_venv(workdir: Path, logs: Path) -> tuple[Path, dict[str, float] | None]:
    """nnU-Net's own venv; created and installed (one pip command) only when missing."""
    venv = workdir / "venv"
    python = venv / "bin" / "python"
    timing = None
    if not (venv / "bin" / "nnUNetv2_train").exists():
        env = dict(os.environ)
        base = getattr(sys, "_base_executable", sys.executable)
        t0, cpu0 = time.perf_counter(), _children_cpu()
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        run_step("install", [str(python), "-m", "pip", "install", *INSTALL], env, logs)
        timing = {"seconds": time.perf_counter() - t0, "cpu_seconds": _children_cpu() - cpu0}
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    cuda = sorted(name for name in packages if name.startswith("nvidia-") or name in {"triton", "cuda-python"})
    if cuda:
        _log(f"WARNING: CUDA packages were installed into {venv}: {', '.join(cuda)}")
    if "+cpu" not in packages.get("torch", ""):
        _log(f"WARNING: torch {packages.get('torch')} is not the CPU build")
    return python, timing


def install_trainer(python: Path) -> Path:
    """Write the budget trainer into nnU-Net's trainer folder; check it is found without importing torchvision."""
    folder = subprocess.run(
        [str(python), "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = Path(folder) / "training" / "nnUNetTrainer" / f"{TRAINER}.py"
    if not path.exists() or path.read_text() != TRAINER_SOURCE:
        path.write_text(TRAINER_SOURCE)
    check = (
        "import sys\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        f"cls = find({TRAINER!r})\n"
        "assert cls.__module__.endswith('.' + cls.__name__), cls.__module__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'timm'))\n"
        "assert not bad, f'trainer search imported {bad}'\n"
        "print(cls.__module__)\n"
    )
    found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(f"{TRAINER} not usable:\n{found.stderr[-3000:]}")
    _log(f"trainer {found.stdout.strip()} found; torchvision not imported")
    return path


def write_raw_dataset(split_csvs: dict[str, Path], raw: Path) -> dict[str, list[str]]:
    """nnU-Net raw dataset (imagesTr = train + val, imagesTs = test); returns the case names per split."""
    folder = raw / DATASET
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True)
    cases: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        cases[split] = []
        for image, mask in read_split(split_csvs[split]):
            case = image.stem
            images, labels = ("imagesTs", "labelsTs") if split == "test" else ("imagesTr", "labelsTr")
            shutil.copyfile(image, folder / images / f"{case}_0000.png")
            shutil.copyfile(mask, folder / labels / f"{case}.png")
            cases[split].append(case)
    dataset = {
        "channel_names": {"0": "fluorescence"},  # not "CT": nnU-Net z-scores each image
        "labels": {"background": 0, "nucleus": 1},
        "numTraining": len(cases["train"]) + len(cases["val"]),
        "file_ending": ".png",
        "overwrite_image_reader_writer": "NaturalImage2DIO",
        "name": "NucleiTiles",
        "description": "DSB2018 nuclei image cut into 128x128 tiles (medlearn benchmarks/segmentation_data.py)",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return cases


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def score(pred_dir: Path, split_csv: Path) -> tuple[dict[str, float], list[dict]]:
    """Per-tile and mean Dice, IoU and HD95 (spacing 1, 1) with medlearn's metrics."""
    from medlearn.evaluation.segmentation import segmentation_metrics

    per_case = []
    for image, mask in read_split(split_csv):
        truth = read_png(mask).astype(np.uint8)
        pred = read_png(pred_dir / f"{image.stem}.png").astype(np.uint8)
        m = segmentation_metrics(pred, truth, (1.0, 1.0), [1])[1]
        per_case.append({"case": image.stem, "dice": m["dice"], "iou": m["iou"], "hd95_mm": m["hd95_mm"]})
    means = {}
    for key in ("dice", "iou", "hd95_mm"):
        values = [c[key] for c in per_case if not math.isnan(c[key])]
        means[key] = float(np.mean(values)) if values else float("nan")
    return means, per_case


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/work/bench/nnunet"))
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget")
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    parser.add_argument("--shared-data", type=Path, default=None)
    parser.add_argument(
        "--iterations-per-epoch", type=int, default=250, help="nnU-Net's default 250 (only lower it for smoke tests)"
    )
    parser.add_argument(
        "--val-iterations-per-epoch", type=int, default=None, help="default: nnU-Net's 50, scaled like the above"
    )
    parser.add_argument("--num-epochs", type=int, default=1000, help="nnU-Net's default; the budget ends training")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"

    python, install_timing = ensure_venv(workdir, logs)
    bin_dir = python.parent
    install_trainer(python)
    version = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('nnunetv2'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    raw, preprocessed, results = workdir / "nnUNet_raw", workdir / "nnUNet_preprocessed", workdir / "nnUNet_results"
    split_csvs = nuclei_split(workdir / "split", args.shared_data)
    cases = write_raw_dataset(split_csvs, raw)
    env = dict(os.environ)
    env.update(nnUNet_raw=str(raw), nnUNet_preprocessed=str(preprocessed), nnUNet_results=str(results))
    env.pop("nnUNet_budget_seconds", None)
    # nnU-Net's final validation spawns a pool of 8 processes by default; on a small CPU that start-up dominates
    env.setdefault("nnUNet_def_n_proc", str(os.cpu_count() or 1))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    preprocess = run_step(
        "preprocess",
        [
            str(bin_dir / "nnUNetv2_plan_and_preprocess"),
            "-d",
            str(DATASET_ID),
            "-c",
            "2d",
            "--verify_dataset_integrity",
        ],
        env,
        logs,
    )
    splits = [{"train": cases["train"], "val": cases["val"]}]
    (preprocessed / DATASET / "splits_final.json").write_text(json.dumps(splits, indent=2))
    ipe = args.iterations_per_epoch
    val_ipe = args.val_iterations_per_epoch or max(1, round(50 * ipe / 250))
    budget = {
        "seconds": args.minutes * 60,
        "iterations_per_epoch": ipe,
        "val_iterations_per_epoch": val_ipe,
        "num_epochs": args.num_epochs,
    }
    trainer_dir = results / DATASET / f"{TRAINER}__nnUNetPlans__2d"
    if trainer_dir.exists():
        shutil.rmtree(trainer_dir)  # a fresh run, not a continuation
    budget["start_unix"] = time.time()  # the trainer's clock starts at the launch, so imports count too
    (preprocessed / DATASET / BUDGET_FILE).write_text(json.dumps(budget, indent=2))
    train = run_step(
        "train",
        [str(bin_dir / "nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"],
        env,
        logs,
    )
    fold_dir = trainer_dir / "fold_0"
    if not (fold_dir / "checkpoint_final.pth").exists():
        raise RuntimeError(f"no checkpoint_final.pth in {fold_dir}")
    curve_data = json.loads((fold_dir / CURVE_FILE).read_text())

    pred_dir = workdir / "pred"
    if pred_dir.exists():
        shutil.rmtree(pred_dir)
    predict = run_step(
        "predict",
        [
            str(bin_dir / "nnUNetv2_predict"),
            *("-i", str(raw / DATASET / "imagesTs"), "-o", str(pred_dir)),
            *("-d", str(DATASET_ID), "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu"),
            *("-chk", "checkpoint_final.pth"),
        ],
        env,
        logs,
    )

    means, per_case = score(pred_dir, split_csvs["test"])
    plans = json.loads((preprocessed / DATASET / "nnUNetPlans.json").read_text())["configurations"]["2d"]
    curve = curve_data["curve"]
    iterations = sum(e["train_iterations"] for e in curve)
    result = {
        "method": "nnU-Net v2 2d (plain trainer, time budget)",
        "nnunet_version": version,
        "budget_minutes": args.minutes,
        "epochs": len(curve),
        "train_seconds": round(train["seconds"], 1),
        "train_cpu_seconds": round(train["cpu_seconds"], 1),
        "predict_seconds": round(predict["seconds"], 1),
        "predict_cpu_seconds": round(predict["cpu_seconds"], 1),
        "preprocess_seconds": round(preprocess["seconds"], 1),
        "preprocess_cpu_seconds": round(preprocess["cpu_seconds"], 1),
        "install_seconds": None if install_timing is None else round(install_timing["seconds"], 1),
        "dice": means["dice"],
        "iou": means["iou"],
        "hd95_mm": means["hd95_mm"],
        "per_case": per_case,
        "curve": [{"seconds": e["seconds"], "epoch": e["epoch"], "pseudo_dice": e["pseudo_dice"]} for e in curve],
        "iterations_per_epoch": curve_data["iterations_per_epoch"],
        "val_iterations_per_epoch": curve_data["val_iterations_per_epoch"],
        "train_iterations": iterations,
        "seconds_per_iteration": round(sum(e["train_seconds"] for e in curve) / max(iterations, 1), 3),
        "seconds_per_val_iteration": round(
            sum(e["val_seconds"] for e in curve) / max(len(curve) * curve_data["val_iterations_per_epoch"], 1), 3
        ),
        "budget_used_seconds": curve[-1]["seconds"] if curve else None,  # launch to the last epoch's end
        "torch_threads": curve_data["torch_threads"],
        "test_time_augmentation": "nnU-Net default (mirroring on)",
        "nnUNet_def_n_proc": env["nnUNet_def_n_proc"],
        "nnUNet_n_proc_DA": env.get("nnUNet_n_proc_DA", f"nnU-Net default (min(12, cpu_count) = {os.cpu_count()})"),
        "plan": {
            "patch_size": plans["patch_size"],
            "batch_size": plans["batch_size"],
            "spacing": plans["spacing"],
            "normalization": plans["normalization_schemes"],
            "network": plans["architecture"]["network_class_name"],
            "n_stages": plans["architecture"]["arch_kwargs"]["n_stages"],
        },
        "split": cases,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
