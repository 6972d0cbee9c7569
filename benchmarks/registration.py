"""Registration benchmark (METHODS.md row reg, first part): the classical methods side by side on pairs of real
anatomy with exact correspondences, 2 CPU cores.

Data: the MNI152 2009a symmetric T1 (``shared/data/mni152``, from nilearn) made into ``--cases`` deformed cases at
4 mm by ``medlearn data landmarks`` (random rotation 8 degrees, scaling 8%, shift 8 mm, elastic 3 mm on a 32 mm
lattice; DEFORMED data), with its seven landmarks and a grey/white-matter label map (the template's maps above
0.5) moved exactly. Pairs: case 0 fixed, every other case moving, so the truth of every point and label is known.
Each method (identity, rigid, affine, bspline, demons) is scored by ``medlearn register evaluate``: Dice and HD95
of the warped labels, landmark error, folding share, SD of log-Jacobian, seconds per pair, with 95% bootstrap
intervals over pairs. The learned model joins this table when ``register train`` exists.

    python benchmarks/registration.py --workdir /work/bench/reg

Prints JSON, writes benchmarks/results/registration.json and the registration section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402
from segmentation_data import SHARED_DATA  # noqa: E402

TEMPLATE = "mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GREY, WHITE = (
    "mni152/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni152/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
METHODS = ("rigid", "affine", "bspline", "demons")


def make_pairs(workdir: Path, cases: int, spacing: float) -> Path:
    from medlearn.data.deformation import RandomDeformation
    from medlearn.data.landmark_set import LandmarkSetSpec, TemplateLabels, make_landmark_set, read_template_landmarks
    from medlearn.io import load
    from medlearn.io.geometry import image_from_affine
    from medlearn.utils.atomic import write_csv_atomic

    folder = workdir / "data"
    pairs = folder / "pairs.csv"
    if pairs.is_file():
        return pairs
    template = load(SHARED_DATA / TEMPLATE)
    grey, white = load(SHARED_DATA / GREY).array[0], load(SHARED_DATA / WHITE).array[0]
    labels = np.zeros(template.spatial_shape, np.uint8)
    labels[grey > 0.5 * grey.max()] = 1
    labels[white > 0.5 * white.max()] = 2
    structures = TemplateLabels(image_from_affine(labels[None], template.affine), {1: "grey", 2: "white"})
    spec = LandmarkSetSpec(count=cases, spacing_mm=spacing, seed=0, deformation=RandomDeformation())
    make_landmark_set(template, folder, spec, read_template_landmarks(None, template), structures)
    rows = [
        (
            "images/case_0000.nii.gz",
            f"images/case_{k:04d}.nii.gz",
            "labels/case_0000.nii.gz",
            f"labels/case_{k:04d}.nii.gz",
            "landmarks/case_0000.fcsv",
            f"landmarks/case_{k:04d}.fcsv",
        )
        for k in range(1, cases)
    ]
    columns = ["fixed", "moving", "fixed_labels", "moving_labels", "fixed_points", "moving_points"]
    return write_csv_atomic(pairs, columns, rows)


def run_all(workdir: Path, cases: int, spacing: float) -> dict:
    from medlearn.apps.registration.classical import ClassicalSettings
    from medlearn.apps.registration.evaluate import evaluate_pairs, read_pairs

    pairs = read_pairs(make_pairs(workdir, cases, spacing))
    rows = []
    for method in METHODS:
        summary = evaluate_pairs(pairs, ClassicalSettings(method=method))
        summary.pop("per_pair")
        print(json.dumps(summary), flush=True)
        rows.append(summary)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "spacing_mm": spacing,
        "pairs": len(pairs),
        "identity": rows[0]["baseline"]["identity"],
        "methods": rows,
    }


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(values) -> str:
    return "" if not values or values[0] is None else f" ({values[0]:.3f}-{values[1]:.3f})"


def results_table(results: dict) -> str:
    identity = results["identity"]
    lines = [
        f"{results['pairs']} pairs of MNI152 T1 deformations at {results['spacing_mm']:g} mm (DEFORMED data: one "
        "template, exact correspondences), grey/white-matter labels and seven landmarks; 95% bootstrap intervals over "
        "pairs; 2 CPU cores.",
        "",
        f"`{results['command']}` ({results['date']})",
        "",
        "| method | Dice (95% CI) | HD95 mm | landmark error mm (95% CI) | folding | SD log-Jacobian | s/pair |",
        "|---|---|---|---|---|---|---|",
        f"| identity | {_fmt(identity['dice'])} | {_fmt(identity['hd95_mm'], 2)} | {_fmt(identity['tre_mm'], 2)} "
        "| 0 | 0 | 0 |",
    ]
    for row in results["methods"]:
        lines.append(
            f"| {row['method']} | {_fmt(row['dice'])}{_ci(row['dice_ci'])} | {_fmt(row['hd95_mm'], 2)} | "
            f"{_fmt(row['tre_mm'], 2)}{_ci(row['tre_mm_ci'])} | {row['folding_fraction']:.2%} | "
            f"{_fmt(row['sdlogj'])} | {row['seconds_per_pair']:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medlearn-reg-bench"))
    parser.add_argument("--cases", type=int, default=9, help="Deformed cases: case 0 fixed, the others moving.")
    parser.add_argument("--spacing", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "registration.json")
    parser.add_argument("--table-only", action="store_true", help="Rewrite RESULTS.md from the JSON, run nothing.")
    args = parser.parse_args()
    if args.table_only:
        results = json.loads(args.json.read_text())
    else:
        results = run_all(args.workdir, args.cases, args.spacing)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    table = results_table(results)
    print(table)
    replace_section(HERE / "RESULTS.md", "registration", table)


if __name__ == "__main__":
    main()
