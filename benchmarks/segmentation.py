"""Segmentation benchmark: the seg-* claims of METHODS.md on real (and hybrid) data, 2 CPU cores.

Experiments (each runs medlearn's own ``segment train`` / ``segment evaluate`` workflows):

- ``nuclei``: the DSB2018 nuclei image cut into disjoint train/val/test tiles (segmentation_data.py);
  U-Net vs DRINet vs patch CNN at the same time budget; U-Net also at nnU-Net's full budget, and the
  nnU-Net v2 reference (nnunet_reference.py, run separately in its own venv) read from its JSON.
- ``mni``: MNI152 T1 at 2 mm, grey/white matter (argmax of the tissue maps) on disjoint axial slabs;
  Lai 2015's 2D-patch vs tri-planar vs 3D-patch voxel classifiers and a 3D U-Net, with compute cost.
- ``loo``: leave-one-case-out over the 5 pyradiomics lesions (CT and MR mixed, as given).
- ``hybrid``: synthetic lesions of controlled radius/contrast in real tumour-free Br35H slices;
  U-Net vs patch CNN, detection sensitivity by lesion size. Labelled HYBRID everywhere.
- ``multimodal``: a low-contrast lesion in one vs two simulated co-registered channels (HYBRID).
- ``nuclei-seeds``, ``mni-seeds``: the same runs with seeds 1 and 2, for the run-to-run spread the claims
  are judged against (run after ``nuclei`` / ``mni``, with ``--merge``).
- ``sparse``: issue 12's failure on data no other experiment tuned on: 64x64 nuclei tiles (foreground 2-41% of
  a tile), train on the left five columns, test on the right three, and the same test tiles with an intensity
  drift (x1.3 gain, +12); the default (normalisation chosen by the plan) vs a forced per-image z-score, seeds
  0-2, beside the learned global threshold and Otsu.

Every row carries the classical baselines scored on the same test cases (the learned global threshold and Otsu
per image) and whether the model beat the best of them.

    python benchmarks/segmentation.py --workdir /work/bench/seg \\
        --nnunet-json benchmarks/results/nnunet_reference.json \\
        --experiments nuclei nuclei-tta nuclei-seeds mni mni-seeds loo hybrid multimodal

Prints JSON, writes benchmarks/results/segmentation.json and the segmentation section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402
from segmentation_data import SHARED_DATA, nuclei_split, sparse_nuclei_split  # noqa: E402


def _pairs_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask"])
        writer.writerows(rows)
    return path


def run_method(
    name: str,
    train_csv: Path,
    val_csv: Path | None,
    test_csv: Path,
    out: Path,
    *,
    model: str,
    minutes: float,
    plan: dict | None = None,
    batches_per_epoch: int = 25,
    seed: int = 0,
    extra_tests: dict[str, Path] | None = None,
) -> dict:
    """Train with a wall-clock budget, then evaluate on the test pairs; times and metrics as a row."""
    from medlearn.apps.segmentation.evaluate import evaluate_run
    from medlearn.apps.segmentation.train import SegmentationTrainRequest, train_segmenter

    if out.exists():
        import shutil

        shutil.rmtree(out)
    request = SegmentationTrainRequest.build(
        data=str(train_csv),
        out=out,
        val_data=str(val_csv) if val_csv else None,
        overrides={
            "segmentation": {"model": model, "batches_per_epoch": batches_per_epoch, "plan_overrides": plan or {}},
            "training": {"max_minutes": minutes, "seed": seed},  # no --epochs: the budget decides
        },
    )
    started = time.perf_counter()
    train_segmenter(request, quiet=True)
    train_wall = time.perf_counter() - started
    history = json.loads((out / "metrics.json").read_text())
    summary, _ = evaluate_run(out, str(test_csv))
    inference = sum(case["seconds"] for case in summary["per_case"])
    plan_used = json.loads((out / "plan.json").read_text())
    row = {
        "gflops_per_patch": _forward_gflops(model, plan_used),
        "name": name,
        "model": model,
        "budget_minutes": minutes,
        "epochs": len(history),
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
        "train_wall_seconds": round(train_wall, 1),
        "seconds_per_epoch": round(sum(h["seconds"] for h in history) / max(1, len(history)), 2),
        "inference_seconds": round(inference, 2),
        "dice": summary["dice"],
        "iou": summary["iou"],
        "hd95_mm": summary["hd95_mm"],
        "per_class": summary["per_class"],
        "cases": summary["cases"],
        "cases_with_missed_structure": summary["cases_with_missed_structure"],
        "cases_with_false_positive": summary["cases_with_false_positive"],
        "distance_unit": summary["distance_unit"],
        "baseline": summary["baseline"],
        "baseline_comparison": summary["baseline_comparison"],
        "normalization": plan_used["normalization"],
        "normalization_reason": plan_used.get("normalization_reason", ""),
        "best_val_dice": max((h.get("val_dice") or 0.0) for h in history),
        "per_case_dice": {case["case"]: case["dice"] for case in summary["per_case"]},
        "patch_size": plan_used["patch_size"],
        "spatial_dims": plan_used["spatial_dims"],
    }
    for label, csv_path in (extra_tests or {}).items():
        other, _ = evaluate_run(out, str(csv_path), report_path=out / f"evaluation-{label}.html")
        row[label] = {key: other[key] for key in ("dice", "iou", "hd95_mm", "baseline", "baseline_comparison", "cases")}
    print(json.dumps({k: v for k, v in row.items() if k != "per_case_dice"}), flush=True)
    return row


def _forward_gflops(model: str, plan: dict) -> float:
    """Forward FLOPs of one training patch (torch's FLOP counter): the compute cost independent of the CPU."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medlearn.apps.segmentation.settings import build_segmentation_model
    from medlearn.planning.plan import SegmentationPlan

    segmentation_plan = SegmentationPlan(**plan)
    network = build_segmentation_model(model, segmentation_plan).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(torch.zeros(1, segmentation_plan.channels, *segmentation_plan.patch_size))
    return round(counter.get_total_flops() / 1e9, 2)


# -- experiments ---------------------------------------------------------------------------------


def nuclei_experiment(workdir: Path, minutes: float, nnunet: dict | None) -> dict:
    """U-Net, DRINet, patch CNN for ``minutes`` (with nnU-Net's reference: one fifth of its training time,
    the issue's speed target), then U-Net for nnU-Net's whole budget."""
    split = nuclei_split(workdir / "data" / "nuclei")
    runs = workdir / "runs" / "nuclei"
    if nnunet:
        minutes = round(nnunet["train_seconds"] / 5 / 60, 2)
    rows = [
        run_method(
            f"{model} ({minutes:g} min)",
            split["train"],
            split["val"],
            split["test"],
            runs / model,
            model=model,
            minutes=minutes,
        )
        for model in ("unet", "drinet", "patch-cnn")
    ]
    result = {"rows": rows}
    if nnunet:
        full = nnunet["budget_minutes"]
        rows.append(
            run_method(
                f"unet ({full:g} min, nnU-Net's budget)",
                split["train"],
                split["val"],
                split["test"],
                runs / "unet-full",
                model="unet",
                minutes=full,
            )
        )
        result["nnunet"] = nnunet
    return result


def nuclei_full_budget(workdir: Path, results: dict, model: str) -> None:
    """Another medlearn model at nnU-Net's full budget on the nuclei split (added to the nuclei rows)."""
    split = nuclei_split(workdir / "data" / "nuclei")
    budget = results["nuclei"]["nnunet"]["budget_minutes"]
    name = f"{model} ({budget:g} min, nnU-Net's budget)"
    rows = [r for r in results["nuclei"]["rows"] if r["name"] != name]
    run = workdir / "runs" / "nuclei" / f"{model}-full"
    rows.append(run_method(name, split["train"], split["val"], split["test"], run, model=model, minutes=budget))
    results["nuclei"]["rows"] = rows
    nuclei_tta(workdir, results)


def nuclei_seeds(workdir: Path, results: dict, seeds: tuple[int, ...] = (1, 2)) -> None:
    """The default U-Net at the short budget again with other seeds: how much of a Dice gap is run-to-run noise."""
    from medlearn.apps.segmentation.evaluate import evaluate_run

    split = nuclei_split(workdir / "data" / "nuclei")
    first = _row(results["nuclei"], "unet", "min)")
    runs = []
    for seed in seeds:
        out = workdir / "runs" / "nuclei" / f"unet-seed{seed}"
        row = run_method(
            f"unet seed {seed}",
            split["train"],
            split["val"],
            split["test"],
            out,
            model="unet",
            minutes=first["budget_minutes"],
            seed=seed,
        )
        summary, _ = evaluate_run(out, str(split["test"]), tta=True, report_path=out / "evaluation-test-tta.html")
        runs.append({"seed": seed, "dice": row["dice"], "tta_dice": summary["dice"]})
    results["nuclei"]["seeds"] = [{"seed": 0, "dice": first["dice"], "tta_dice": _dice(first, True)}, *runs]


def nuclei_tta(workdir: Path, results: dict) -> None:
    """Re-score the nuclei runs with flip test-time augmentation (nnU-Net predicts with mirroring on)."""
    from medlearn.apps.segmentation.evaluate import evaluate_run

    test_csv = workdir / "data" / "nuclei" / "test.csv"
    for row in results["nuclei"]["rows"]:
        run = (
            workdir
            / "runs"
            / "nuclei"
            / (f"{row['model']}-full" if "nnU-Net's budget" in row["name"] else row["model"])
        )
        if "tta" in row:
            continue
        summary, _ = evaluate_run(run, str(test_csv), tta=True, report_path=run / "evaluation-test-tta.html")
        row["tta"] = {key: summary[key] for key in ("dice", "iou", "hd95_mm")}
        row["tta"]["inference_seconds"] = round(sum(case["seconds"] for case in summary["per_case"]), 2)


MNI_MODELS = ("lai-2d", "lai-triplanar", "lai-3d", "unet")
MNI_PLAN = {"patch_size": [48, 48, 48], "depth": 3, "batch_size": 2}


def mni_split(workdir: Path) -> tuple[dict[str, Path], dict[str, tuple[int, int]]]:
    """Grey/white matter at 2 mm: the lower half trains, a middle slab validates, the upper slab tests."""
    from medlearn.io import load, resample_to_spacing, save
    from medlearn.io.geometry import image_from_affine

    folder = workdir / "data" / "mni"
    folder.mkdir(parents=True, exist_ok=True)
    mni = SHARED_DATA / "mni152"
    t1 = resample_to_spacing(load(mni / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"), 2.0)
    gm = resample_to_spacing(load(mni / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"), 2.0).array[0]
    wm = resample_to_spacing(load(mni / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), 2.0).array[0]
    background = np.clip(255.0 - gm - wm, 0, None)
    labels = np.argmax(np.stack([background, gm, wm]), axis=0).astype(np.uint8)
    depth = t1.spatial_shape[2]
    slabs = {
        "train": (0, int(depth * 0.5)),
        "val": (int(depth * 0.5), int(depth * 0.62)),
        "test": (int(depth * 0.62), depth),
    }
    csvs = {}
    for part, (start, stop) in slabs.items():
        shift = np.eye(4)
        shift[2, 3] = start
        image = image_from_affine(t1.array[..., start:stop], t1.affine @ shift)
        mask = image_from_affine(labels[None, ..., start:stop], image.affine)
        pair = (str(save(image, folder / f"{part}_t1.nii.gz")), str(save(mask, folder / f"{part}_tissue.nii.gz")))
        csvs[part] = _pairs_csv(folder / f"{part}.csv", [pair])
    return csvs, slabs


def _mni_run(workdir: Path, csvs: dict[str, Path], model: str, minutes: float, seed: int = 0) -> dict:
    out = workdir / "runs" / "mni" / (model if seed == 0 else f"{model}-seed{seed}")
    name = f"{model} ({minutes:g} min)" if seed == 0 else f"{model} seed {seed}"
    return run_method(
        name, csvs["train"], csvs["val"], csvs["test"], out, model=model, minutes=minutes, plan=MNI_PLAN,
        batches_per_epoch=10, seed=seed,
    )  # fmt: skip


def mni_experiment(workdir: Path, minutes: float) -> dict:
    """The Lai 2015 voxel classifiers (2D, tri-planar, 3D patch) and the 3D U-Net on the MNI152 slabs."""
    csvs, slabs = mni_split(workdir)
    rows = [_mni_run(workdir, csvs, model, minutes) for model in MNI_MODELS]
    return {"rows": rows, "slabs": slabs, "labels": {"0": "background", "1": "grey matter", "2": "white matter"}}


def mni_rerun(workdir: Path, results: dict, models: list[str], minutes: float, seeds=(0, 1, 2)) -> None:
    """Re-measure ``models`` (every seed) in the saved MNI block, keeping the other models' rows and seeds; the
    block records which models were re-measured when (``remeasured``)."""
    csvs, _ = mni_split(workdir)
    block = results["mni"]
    for model in models:
        dice = []
        for seed in seeds:
            row = _mni_run(workdir, csvs, model, minutes, seed)
            dice.append(row["dice"])
            if seed == 0:
                block["rows"] = [row if r["model"] == model else r for r in block["rows"]]
        block.setdefault("seeds", {"seeds": list(seeds), "dice": {}})["dice"][model] = dice
        block.setdefault("remeasured", {})[model] = time.strftime("%Y-%m-%d")


def mni_seeds(workdir: Path, results: dict, seeds: tuple[int, ...] = (1, 2)) -> None:
    """Every MNI method again with other seeds: the test slab (top of the head) lies beyond the training
    slab's anatomy, so one seed's Dice moves by up to 0.1; the claims then compare means."""
    csvs, _ = mni_split(workdir)
    block = results["mni"]
    spread = {}
    for model in MNI_MODELS:
        first = _row(block, model)
        dice = [first["dice"]]
        for seed in seeds:
            dice.append(_mni_run(workdir, csvs, model, first["budget_minutes"], seed)["dice"])
        spread[model] = dice
    block["seeds"] = {"seeds": [0, *seeds], "dice": spread}


SPARSE_VARIANTS = (("default", None), ("zscore", {"normalization": "zscore"}))


def sparse_experiment(workdir: Path, minutes: float, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Issue 12's set: the default U-Net (normalisation chosen by the plan) and a forced per-image z-score, three
    seeds each, on disjoint test tiles with and without an intensity drift, beside the classical baselines."""
    split = sparse_nuclei_split(workdir / "data" / "sparse")
    rows = []
    for seed in seeds:
        for variant, plan in SPARSE_VARIANTS:
            rows.append(
                run_method(
                    f"unet {variant} seed {seed}",
                    split["train"],
                    None,
                    split["test"],
                    workdir / "runs" / "sparse" / f"{variant}-seed{seed}",
                    model="unet",
                    minutes=minutes,
                    plan=plan,
                    seed=seed,
                    extra_tests={"drift": split["test_drift"]},
                )
            )
            rows[-1]["variant"], rows[-1]["seed"] = variant, seed
    return {"rows": rows}


def loo_experiment(workdir: Path, minutes: float) -> dict:
    """Leave one pyradiomics case out: train on the other four (no validation case), test on it."""
    folder = SHARED_DATA / "pyradiomics"
    cases = ["brain1", "brain2", "breast1", "lung1", "lung2"]
    rows = []
    for held in cases:
        train = _pairs_csv(
            workdir / "data" / "loo" / f"without_{held}.csv",
            [(str(folder / f"{c}_image.nrrd"), str(folder / f"{c}_label.nrrd")) for c in cases if c != held],
        )
        test = _pairs_csv(
            workdir / "data" / "loo" / f"{held}.csv",
            [(str(folder / f"{held}_image.nrrd"), str(folder / f"{held}_label.nrrd"))],
        )
        row = run_method(
            f"unet, test {held}", train, None, test, workdir / "runs" / "loo" / held, model="unet", minutes=minutes
        )
        row["held_out"] = held
        rows.append(row)
    return {"rows": rows}


def hybrid_experiment(workdir: Path, minutes: float) -> dict:
    """Synthetic lesions (radius 2-8 mm, contrast 1-3 SD) in real tumour-free Br35H slices.

    The set is what ``medlearn data hybrid br35h --count 120`` writes: one background per case, the
    radius x contrast levels cycled so every split sees each level; cases 0-79 train, 80-89 validate,
    90-119 test.
    """
    from medlearn.data.hybrid_set import HybridSetSpec, background_files, make_hybrid_set

    folder = workdir / "data" / "hybrid"
    pairs_csv = make_hybrid_set(background_files("br35h"), folder, HybridSetSpec(count=120, seed=0))
    with open(pairs_csv, newline="") as handle:
        pairs = [(str(folder / row["image"]), str(folder / row["mask"])) for row in csv.DictReader(handle)]
    with open(folder / "lesions.csv", newline="") as handle:
        cases = list(csv.DictReader(handle))
    parts = {"train": slice(0, 80), "val": slice(80, 90), "test": slice(90, 120)}
    csvs = {part: _pairs_csv(folder / f"{part}.csv", pairs[rows]) for part, rows in parts.items()}
    lesions = [
        {"case": case["case"], "radius_mm": float(case["radius_mm"]), "contrast": float(case["contrast_sd"])}
        for case in cases[parts["test"]]
    ]
    runs = workdir / "runs" / "hybrid"
    results = []
    for model in ("unet", "patch-cnn"):
        row = run_method(
            f"{model} ({minutes:g} min, HYBRID)",
            csvs["train"],
            csvs["val"],
            csvs["test"],
            runs / model,
            model=model,
            minutes=minutes,
        )
        per_case = row["per_case_dice"]
        detected = {}
        for lesion in lesions:
            dice = per_case.get(lesion["case"])
            key = f"r{lesion['radius_mm']:g}mm"
            detected.setdefault(key, []).append(dice is not None and dice > 0.1)
        row["detected_by_radius"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(detected.items())}
        results.append(row)
    return {"rows": results, "hybrid": True, "lesions": lesions}


MULTIMODAL_VARIANTS = (("single", "1 channel"), ("second", "channel 2 only"), ("multi", "2 channels"))


def multimodal_experiment(workdir: Path, minutes: float, variants=MULTIMODAL_VARIANTS, previous=None) -> dict:
    """seg-multimodal on HYBRID data: a lesion seen at low contrast in two co-registered "modalities".

    No co-registered multi-modal real set installs offline, so the second channel is simulated from the
    same real Br35H slice (an inverted, gamma-changed contrast, like T2 against T1) with the same lesion at
    its own contrast and independent noise in each channel. One U-Net sees channel 1 only, another both
    (a 2-channel NIfTI); same budget, same cases. This tests the principle (complementary channels in one
    network), not a clinical claim.
    """
    from scipy import ndimage

    from medlearn.data.hybrid import LesionSpec, insert_lesion
    from medlearn.data.sources import br35h_samples
    from medlearn.io import load, save
    from medlearn.io.color import to_grey
    from medlearn.io.geometry import image_from_affine

    folder = workdir / "data" / "multimodal"
    rng = np.random.default_rng(1)
    negatives = sorted((s for s in br35h_samples() if s.label == "no"), key=lambda s: str(s.path))
    chosen = [negatives[i] for i in rng.permutation(len(negatives))[:120]]
    rows: dict[str, dict[str, list]] = {
        kind: {"train": [], "val": [], "test": []} for kind in ("single", "second", "multi")
    }
    for index, sample in enumerate(chosen):
        grey = to_grey(load(sample.path)).array[0].astype(np.float32)
        grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-6)
        background = image_from_affine(grey[None], np.eye(4))
        spec = LesionSpec(radius_mm=float(rng.choice((4.0, 6.0, 8.0))), contrast=0.8, texture=0.3)
        first, mask = insert_lesion(background, spec, rng)
        body = grey > np.percentile(grey, 20)
        second = np.where(body, (1.0 - grey) ** 1.5, 0.0).astype(np.float32)
        profile = ndimage.gaussian_filter(mask.astype(np.float32), 0.5)
        second += profile * 0.8 * float(second[body].std())
        noise = [0.6 * float(c[body].std()) for c in (first.array[0], second)]
        channel_1 = first.array[0] + rng.normal(0, noise[0], grey.shape).astype(np.float32)
        channel_2 = second + rng.normal(0, noise[1], grey.shape).astype(np.float32)
        part = "train" if index < 80 else "val" if index < 90 else "test"
        mask_path = save(
            image_from_affine(mask[None].astype(np.uint8), np.eye(4)), folder / "masks" / f"m{index:03d}.nii.gz"
        )
        single = save(image_from_affine(channel_1[None], np.eye(4)), folder / "single" / f"m{index:03d}.nii.gz")
        multi = save(
            image_from_affine(np.stack([channel_1, channel_2]), np.eye(4)), folder / "multi" / f"m{index:03d}.nii.gz"
        )
        second_only = save(image_from_affine(channel_2[None], np.eye(4)), folder / "second" / f"m{index:03d}.nii.gz")
        rows["single"][part].append((str(single), str(mask_path)))
        rows["second"][part].append((str(second_only), str(mask_path)))
        rows["multi"][part].append((str(multi), str(mask_path)))
    results = []
    for kind, label in variants:
        csvs = {part: _pairs_csv(folder / f"{kind}_{part}.csv", pairs) for part, pairs in rows[kind].items()}
        row = run_method(
            f"unet, {label} ({minutes:g} min, HYBRID)",
            csvs["train"],
            csvs["val"],
            csvs["test"],
            workdir / "runs" / "multimodal" / kind,
            model="unet",
            minutes=minutes,
        )
        results.append(row)
    kept = [r for r in (previous or {}).get("rows", []) if r["name"] not in {x["name"] for x in results}]
    order = {label: i for i, (_, label) in enumerate(MULTIMODAL_VARIANTS)}
    rows_all = sorted(kept + results, key=lambda r: next((order[k] for k in order if k in r["name"]), 9))
    return {"rows": rows_all, "hybrid": True}


# -- table -----------------------------------------------------------------------------------------


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _detection(block: dict, row: dict, key: str, unit: str) -> str:
    """Share of test lesions found (Dice > 0.1), grouped by one lesion property."""
    found: dict[float, list[bool]] = {}
    for lesion in block.get("lesions", []):
        dice = row.get("per_case_dice", {}).get(lesion["case"])
        found.setdefault(lesion[key], []).append(dice is not None and dice > 0.1)
    return ", ".join(f"{level:g} {unit}: {np.mean(hits):.0%} of {len(hits)}" for level, hits in sorted(found.items()))


def _class_dice(row: dict, label: str) -> str:
    return _fmt(row["per_class"].get(label, {}).get("dice"))


def results_table(results: dict) -> str:
    lines = []
    for experiment, title in (
        ("nuclei", "Nuclei 2D (DSB2018 image, disjoint tiles: 10 train / 2 val / 4 test)"),
        ("mni", "MNI152 grey/white matter, 2 mm, disjoint axial slabs (3 classes)"),
        ("sparse", "Nuclei, 64x64 tiles, foreground 2-41% per tile: train left 5 columns (40), test right 3 (24)"),
        ("loo", "pyradiomics lesions, leave one case out (5 folds, CT and MR mixed)"),
        ("hybrid", "HYBRID: synthetic lesions in real tumour-free Br35H slices (80 train / 10 val / 30 test)"),
        ("multimodal", "HYBRID multi-modal: low-contrast lesion in 1 vs 2 co-registered channels (80 / 10 / 30)"),
    ):
        if experiment not in results:
            continue
        block = results[experiment]
        unit = block["rows"][0].get("distance_unit", "mm") if block["rows"] else "mm"
        lines += [
            f"### {title}",
            "",
            f"| method | epochs | train s | s/epoch | GFLOP/patch | inference s | Dice | IoU | HD95 {unit} | missed | "
            "best classical baseline: Dice | model beats it? |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in block["rows"]:
            lines.append(
                f"| {row['name']} | {row['epochs']} | {row['train_seconds']:.0f} | {row['seconds_per_epoch']:.1f} | "
                f"{row.get('gflops_per_patch', 'n/a')} | "
                f"{row['inference_seconds']:.2f} | {_fmt(row['dice'])} | {_fmt(row['iou'])} | "
                f"{_fmt(row['hd95_mm'], 1)} | "
                f"{row['cases_with_missed_structure']}/{row['cases']} | {_baseline_cells(row)} |"
            )
        if block.get("note"):
            lines += ["", f"Note: {block['note']}"]
        nn = block.get("nnunet")
        if nn:
            lines.append(
                f"| nnU-Net v2 2d ({nn['budget_minutes']:g} min, {nn.get('epochs')} epochs) | {nn.get('epochs')} | "
                f"{nn.get('train_seconds', 0):.0f} | - | - | {nn.get('predict_seconds', 0):.2f} | "
                f"{_fmt(nn.get('dice'))} | {_fmt(nn.get('iou'))} | {_fmt(nn.get('hd95_mm'), 1)} | - |"
            )
        if experiment == "nuclei" and any("tta" in row for row in block["rows"]):
            lines.append("")
            lines.append(
                "With flip test-time augmentation (nnU-Net predicts with mirroring on): "
                + "; ".join(
                    f"{row['name']} Dice {_fmt(row['tta']['dice'])}, HD95 {_fmt(row['tta']['hd95_mm'], 1)} mm"
                    for row in block["rows"]
                    if "tta" in row
                )
            )
        if experiment == "nuclei" and block.get("seeds"):
            seeds = block["seeds"]
            lines.append("")
            lines.append(
                f"Run-to-run spread of the default (unet, {_row(block, 'unet', 'min)')['budget_minutes']:g} min), "
                + "seeds "
                + ", ".join(str(s["seed"]) for s in seeds)
                + ": Dice "
                + " / ".join(_fmt(s["dice"]) for s in seeds)
                + ", with TTA "
                + " / ".join(_fmt(s["tta_dice"]) for s in seeds)
            )
        if experiment == "mni":
            lines.append("")
            lines.append(
                "Per class Dice (grey / white matter): "
                + "; ".join(
                    f"{row['model']} {_class_dice(row, '1')} / {_class_dice(row, '2')}" for row in block["rows"]
                )
            )
            if block.get("seeds"):
                seeds = block["seeds"]
                lines.append("")
                lines.append(
                    f"Run-to-run spread, seeds {', '.join(map(str, seeds['seeds']))}: "
                    + "; ".join(
                        f"{model} {' / '.join(_fmt(d) for d in dice)} (mean {_fmt(float(np.mean(dice)))})"
                        for model, dice in seeds["dice"].items()
                    )
                )
            for model, date in (block.get("remeasured") or {}).items():
                lines.append("")
                lines.append(
                    f"{model} re-measured on {date} after the padding/normalisation fix (padding with the background "
                    "level; dataset statistics over the non-zero voxels); the other rows are from before it."
                )
        if experiment == "sparse":
            lines += _sparse_lines(block)
        if experiment == "hybrid":
            lines.append("")
            for key, unit in (("radius_mm", "mm radius"), ("contrast", "SD contrast")):
                lines.append(
                    f"Detection (Dice > 0.1) by lesion {key.split('_')[0]}: "
                    + "; ".join(f"{row['model']} {_detection(block, row, key, unit)}" for row in block["rows"])
                )
                lines.append("")
        lines.append("")
    return "\n".join(lines)


def _baseline_cells(row: dict) -> str:
    """``0.873 (global-threshold) | yes`` from a row's baseline comparison."""
    comparison = row.get("baseline_comparison")
    if not comparison:
        return "- | -"
    return f"{_fmt(comparison['baseline'])} ({comparison['baseline_name']}) | {'yes' if comparison['beaten'] else 'no'}"


def _sparse_lines(block: dict) -> list[str]:
    """Means over seeds, on the plain and the drifted test tiles, of each variant and of the baselines."""
    lines = [""]
    for test in ("test", "drift"):
        parts = []
        for variant, _ in SPARSE_VARIANTS:
            rows = [r for r in block["rows"] if r.get("variant") == variant]
            dice = [r["dice"] if test == "test" else r["drift"]["dice"] for r in rows]
            parts.append(f"{variant} {_fmt(float(np.mean(dice)))} ({' / '.join(_fmt(d) for d in dice)})")
        first = block["rows"][0] if test == "test" else block["rows"][0]["drift"]
        parts += [f"{name} {_fmt(values['dice'])}" for name, values in first["baseline"].items()]
        label = "test tiles" if test == "test" else "test tiles with drift (x1.3, +12)"
        lines.append(f"Mean Dice over seeds 0-2 on the {label}: " + "; ".join(parts) + ".")
        lines.append("")
    reason = block["rows"][0].get("normalization_reason", "")
    lines.append(f"The plan's normalisation: {block['rows'][0].get('normalization')}, because {reason}.")
    lines.append("")
    return lines


def _row(block: dict, model: str, contains: str = "") -> dict | None:
    return next((r for r in block["rows"] if r["model"] == model and contains in r["name"]), None)


def _dice(row: dict | None, tta: bool = False) -> float:
    if row is None:
        return float("nan")
    value = row["tta"]["dice"] if tta and "tta" in row else row["dice"]
    return float("nan") if value is None else float(value)


def claims(results: dict) -> str:
    """One line per claim of METHODS.md / the issue, with the numbers that decide it."""
    lines = ["| claim | measured | held? |", "|---|---|---|"]

    def add(claim: str, measured: str, held: bool | str | None) -> None:
        verdict = held if isinstance(held, str) else "yes" if held else "no" if held is not None else "n/a"
        lines.append(f"| {claim} | {measured} | {verdict} |")

    def beats(better: float, worse: float, noise: float) -> bool | str:
        """A single-seed comparison: decided only when the gap exceeds the default's seed-to-seed range."""
        if abs(better - worse) <= noise:
            return f"undecided (gap {better - worse:+.3f} within the seed range {noise:.3f})"
        return better > worse

    nuclei = results.get("nuclei")
    if nuclei and nuclei.get("nnunet"):
        nn = nuclei["nnunet"]
        tta_seeds = [s["tta_dice"] for s in nuclei.get("seeds") or [] if s.get("tta_dice") is not None]
        tta_noise = float(np.ptp(tta_seeds)) if tta_seeds else 0.0
        for full in (r for r in nuclei["rows"] if "nnU-Net's budget" in r["name"]):
            add(
                f"medlearn's Dice >= nnU-Net's at the same budget ({full['model']}, both with flip TTA)",
                f"{full['model']} {_dice(full, True):.3f} vs nnU-Net {nn['dice']:.3f} "
                f"({nn['budget_minutes']:g} min each; one nnU-Net seed)",
                beats(_dice(full, True), nn["dice"], tta_noise),
            )
        fifth = nn["train_seconds"] / 5
        short = [r for r in nuclei["rows"] if "nnU-Net's budget" not in r["name"]]
        in_time = [r for r in short if r["train_seconds"] <= fifth]
        verdicts = [beats(_dice(r, True), nn["dice"], tta_noise) for r in in_time]
        reached: bool | str = any(v is True for v in verdicts) or next(
            (v for v in verdicts if isinstance(v, str)), False
        )
        add(
            "medlearn reaches nnU-Net's final Dice in <= 1/5 of its time",
            f"nnU-Net {nn['dice']:.3f} after {nn['train_seconds']:.0f} s; limit {fifth:.0f} s; with TTA: "
            + ", ".join(f"{r['model']} {_dice(r, True):.3f} ({r['train_seconds']:.0f} s)" for r in short)
            + (
                f"; U-Net over seeds: {' / '.join(_fmt(x['tta_dice']) for x in nuclei['seeds'])}"
                if nuclei.get("seeds")
                else ""
            ),
            reached,
        )
    for name, block in (("nuclei", nuclei), ("MNI152", results.get("mni"))):
        if not block:
            continue
        unet = _row(block, "unet", "min)") if name == "nuclei" else _row(block, "unet")
        drinet = _row(block, "drinet")
        seed_dice = [s["dice"] for s in block.get("seeds") or []] if name == "nuclei" else []
        noise = float(np.ptp(seed_dice)) if seed_dice else 0.0
        if drinet is not None:
            add(
                f"seg-drinet: DRINet beats U-Net ({name})",
                f"{_dice(drinet):.3f} vs {_dice(unet):.3f}"
                + (f" (U-Net over seeds: {' / '.join(_fmt(d) for d in seed_dice)})" if seed_dice else ""),
                beats(_dice(drinet), _dice(unet), noise),
            )
        patch = _row(block, "patch-cnn")
        if patch is not None:
            dense = max(_dice(unet), _dice(drinet))
            add(
                f"seg-patch: dense networks beat the patch CNN ({name})",
                f"patch CNN {_dice(patch):.3f} ({patch['gflops_per_patch']} GFLOP/patch) vs best dense {dense:.3f}",
                beats(dense, _dice(patch), noise),
            )
    mni = results.get("mni")
    if mni:
        two, tri, three = (_row(mni, m) for m in ("lai-2d", "lai-triplanar", "lai-3d"))
        if two and tri and three:
            seeds = mni.get("seeds")
            if seeds:
                dice_3d, dice_tri, dice_2d = (
                    float(np.mean(seeds["dice"][m])) for m in ("lai-3d", "lai-triplanar", "lai-2d")
                )
                over = f" (means of {len(seeds['seeds'])} seeds)"
            else:
                dice_3d, dice_tri, dice_2d, over = _dice(three), _dice(tri), _dice(two), ""
            add(
                "seg-2d-tri-3d: 3D patch > tri-planar > 2D patch (Dice)",
                f"3D {dice_3d:.3f}, tri-planar {dice_tri:.3f}, 2D {dice_2d:.3f}{over}",
                dice_3d > dice_tri > dice_2d,
            )
            add(
                "seg-2d-tri-3d: 3D costs much more compute",
                f"GFLOP/patch 3D {three['gflops_per_patch']}, tri-planar {tri['gflops_per_patch']}, 2D "
                f"{two['gflops_per_patch']}; s/epoch {three['seconds_per_epoch']}, {tri['seconds_per_epoch']}, "
                f"{two['seconds_per_epoch']}",
                three["gflops_per_patch"] > 1.5 * tri["gflops_per_patch"],
            )
    sparse = results.get("sparse")
    if sparse:
        default = [r for r in sparse["rows"] if r.get("variant") == "default"]
        zscore = [r for r in sparse["rows"] if r.get("variant") == "zscore"]
        for test, label in (("test", "test tiles"), ("drift", "drifted test tiles")):
            pick = (lambda r: r["dice"]) if test == "test" else (lambda r: r["drift"]["dice"])  # noqa: E731
            dice = [pick(r) for r in default]
            block = default[0] if test == "test" else default[0]["drift"]
            threshold = block["baseline"]["global-threshold"]["dice"]
            best = max(v["dice"] for v in block["baseline"].values())
            add(
                f"issue 12: the default segmentation beats the tuned threshold baseline on the sparse {label}",
                f"default U-Net {np.mean(dice):.3f} ({' / '.join(_fmt(d) for d in dice)}) vs learned global "
                f"threshold {threshold:.3f}, best baseline {best:.3f}",
                min(dice) > threshold,
            )
            other = [pick(r) for r in zscore]
            add(
                f"the plan's normalisation ({default[0]['normalization']}) vs per-image z-score ({label}, seed means)",
                f"{np.mean(dice):.3f} vs {np.mean(other):.3f} (seed ranges {np.ptp(dice):.3f}, {np.ptp(other):.3f})",
                beats(float(np.mean(dice)), float(np.mean(other)), max(float(np.ptp(dice)), float(np.ptp(other)))),
            )
    multimodal = results.get("multimodal")
    if multimodal:
        by_name = {
            label: next((r for r in multimodal["rows"] if label in r["name"]), None) for _, label in MULTIMODAL_VARIANTS
        }
        singles = [r for key, r in by_name.items() if key != "2 channels" and r is not None]
        multi = by_name["2 channels"]
        if multi and singles:
            best_single = max(_dice(r) for r in singles)
            add(
                "seg-multimodal: two co-registered channels beat either one alone (HYBRID)",
                f"2 channels {_dice(multi):.3f} vs "
                + ", ".join(f"{r['name'].split(' (')[0]} {_dice(r):.3f}" for r in singles),
                _dice(multi) > best_single,
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiments", nargs="*", default=["nuclei", "nuclei-tta", "mni", "loo", "hybrid", "multimodal"]
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-seg-bench"))
    parser.add_argument("--minutes", type=float, default=2.0, help="Training budget per method (nuclei, hybrid).")
    parser.add_argument("--mni-minutes", type=float, default=3.0)
    parser.add_argument("--mni-models", nargs="*", default=None, help="Experiment mni-rerun: re-measure these only.")
    parser.add_argument("--loo-minutes", type=float, default=1.5)
    parser.add_argument("--sparse-minutes", type=float, default=3.0)
    parser.add_argument("--nnunet-json", type=Path, default=None, help="Output of nnunet_reference.py.")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "segmentation.json")
    parser.add_argument("--merge", action="store_true", help="Keep experiments of an earlier JSON not rerun now.")
    parser.add_argument("--table-only", action="store_true", help="Rewrite RESULTS.md from the JSON, run nothing.")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    keep = args.merge or args.table_only
    results = json.loads(args.json.read_text()) if keep and args.json.is_file() else {}
    nnunet = json.loads(args.nnunet_json.read_text()) if args.nnunet_json else None
    for experiment in [] if args.table_only else args.experiments:
        if experiment == "nuclei":
            results["nuclei"] = nuclei_experiment(args.workdir, args.minutes, nnunet)
        elif experiment == "mni":
            results["mni"] = mni_experiment(args.workdir, args.mni_minutes)
        elif experiment == "loo":
            results["loo"] = loo_experiment(args.workdir, args.loo_minutes)
        elif experiment == "sparse":
            results["sparse"] = sparse_experiment(args.workdir, args.sparse_minutes)
        elif experiment == "hybrid":
            results["hybrid"] = hybrid_experiment(args.workdir, args.minutes)
        elif experiment.startswith("nuclei-full-"):
            nuclei_full_budget(args.workdir, results, experiment.removeprefix("nuclei-full-"))
        elif experiment == "nuclei-seeds":
            nuclei_seeds(args.workdir, results)
        elif experiment == "mni-seeds":
            mni_seeds(args.workdir, results)
        elif experiment == "mni-rerun":
            mni_rerun(args.workdir, results, args.mni_models or list(MNI_MODELS), args.mni_minutes)
        elif experiment == "nuclei-tta":
            nuclei_tta(args.workdir, results)
        elif experiment == "multimodal":
            results["multimodal"] = multimodal_experiment(args.workdir, args.minutes)
        elif experiment == "multimodal-control":
            control = MULTIMODAL_VARIANTS[1:2]
            results["multimodal"] = multimodal_experiment(
                args.workdir, args.minutes, control, results.get("multimodal")
            )
        else:
            raise SystemExit(f"unknown experiment {experiment}")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = results_table(results) + "\n### Claims\n\n" + claims(results) + "\n"
    print(table)
    replace_section(HERE / "RESULTS.md", "segmentation", table)


if __name__ == "__main__":
    main()
