"""Label-scarce augmentation study on Br35H (METHODS gen-augment and pretrain-ae), 2 CPU cores.

Classic augmentation vs classic + class-conditional GAN samples vs denoising-autoencoder
pre-training, at 5/10/25/100% of the training labels, several seeds, on one fixed duplicate-aware
test split; see medlearn.apps.studies.augmentation for the protocol.

    .venv/bin/python benchmarks/augmentation_study.py --synthesizer gan          # the full study
    .venv/bin/python benchmarks/augmentation_study.py --arms classic,pretrain-ae  # without the GAN arm

``--synthesizer gan`` uses the project's conditional GAN (``generation_synthesizer``, ``--gan-minutes`` each);
any ``package.module:function`` following the ``Synthesizer`` protocol works too. The study resumes
in ``--out`` (finished runs are skipped), so an interrupted benchmark continues where it stopped.
Prints JSON and writes benchmarks/results/augmentation_study.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_table import replace_section  # noqa: E402


def load_synthesizer(spec: str | None, gan_minutes: float = 3.0, gan_model: str = "wgan-gp"):
    """``None``, ``"gan"`` (the project's conditional GAN) or ``"package.module:function"``, imported lazily."""
    if not spec or spec == "none":
        return None
    if spec == "gan":
        from medlearn.apps.generation.synthesizer import conditional_gan_synthesizer

        return conditional_gan_synthesizer(model=gan_model, minutes=gan_minutes)
    target = spec
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise SystemExit(f"--synthesizer must be 'gan' or 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise SystemExit(
                f"--synthesizer {spec}: module {module_name} is not available ({error}); "
                "run without the gan arm (--arms classic,pretrain-ae) until it exists"
            ) from None
        raise
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"--synthesizer {spec}: {module_name} has no {attribute!r}") from None


def _ci(entry: dict | None, scale: float = 100.0) -> str:
    if not entry or entry.get("mean") is None:
        return "-"
    if entry.get("low") is None:
        return f"{entry['mean'] * scale:.1f}"
    return f"{entry['mean'] * scale:.1f} ({entry['low'] * scale:.1f} to {entry['high'] * scale:.1f})"


def markdown(document: dict) -> str:
    """Accuracy, sensitivity, specificity per arm and label share (mean and 95% t-interval over seeds, in %),
    the paired differences to classic augmentation with their verdicts, and the 10%-label target."""
    settings = document["settings"]
    cells = {(row["arm"], float(row["fraction"])): row for row in document["summary"]}
    comparisons = {(row["arm"], float(row["fraction"])): row for row in document["comparisons"]}
    arms = [a for a in settings["arms"]]
    lines = [
        f"Br35H, duplicate-aware {1 - settings['test_fraction']:.0%}/{settings['test_fraction']:.0%} train/test split, "
        f"{settings['model']} at {settings['image_size']} px, {settings['seeds']} seeds (nested labelled subsets, "
        "whole duplicate groups), the same optimisation steps for every arm at a label share; mean and 95% "
        "t-interval over seeds, in %. gan: + as many class-conditional WGAN-GP images as real ones (GAN fitted on "
        "the labelled subset only); pretrain-ae: feature trunk pre-trained as a denoising autoencoder on all "
        "training images.",
        "",
        "| labels | metric | " + " | ".join(arms) + " | " + " | ".join(f"{a} - classic" for a in arms[1:]) + " |",
        "|---|---|" + "---|" * (2 * len(arms) - 1),
    ]
    for fraction in settings["fractions"]:
        for metric in ("accuracy", "sensitivity", "specificity"):
            values = [_ci(cells.get((arm, float(fraction)), {}).get(metric)) for arm in arms]
            diffs = []
            for arm in arms[1:]:
                comparison = comparisons.get((arm, float(fraction)), {})
                diff = comparison.get(f"{metric}_difference")
                text = _ci(diff)
                if metric == "accuracy" and comparison.get("verdict"):
                    text += f" {comparison['verdict']}"
                diffs.append(text)
            lines.append(f"| {fraction:.0%} | {metric} | " + " | ".join(values + diffs) + " |")
    target = document.get("target", {})
    lines += [
        "",
        f"Target (GAN-augmented beats classic by >= 2 accuracy points at 10% labels): **{target.get('status')}**",
    ]
    if target.get("statement"):
        lines.append(f"— {target['statement']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from medlearn.apps.studies.augmentation import ARMS, StudySettings

    defaults = StudySettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=defaults.data, help="br35h, a CSV manifest or a folder of class folders")
    parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in defaults.fractions))
    parser.add_argument("--seeds", type=int, default=defaults.seeds)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs over the real labelled subset")
    parser.add_argument("--min-steps", type=int, default=defaults.min_steps, help="floor of every run's steps")
    parser.add_argument("--minutes-per-run", type=float, default=None, help="cap of each classifier training")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--pretrain-epochs", type=int, default=defaults.pretrain_epochs)
    parser.add_argument("--pretrain-minutes", type=float, default=None)
    parser.add_argument("--gan-model", default="wgan-gp", help="conditional GAN of the gan arm (dcgan, wgan-gp)")
    parser.add_argument("--gan-minutes", type=float, default=3.0, help="training budget of each conditional GAN")
    parser.add_argument("--synthetic-ratio", type=float, default=defaults.synthetic_ratio)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--synthesizer", default=None, help="'gan' or package.module:function (needed by arm gan)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "runs" / "augmentation_study")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "augmentation_study.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="table of the saved --json into RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from medlearn.apps.studies.augmentation import StudySettings, run_study

    args = parse_args(argv)
    if args.table_only:
        document = json.loads(args.json.read_text())
        replace_section(HERE / "RESULTS.md", "augmentation study", markdown(document))
        print(markdown(document))
        return document
    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    synthesizer = load_synthesizer(args.synthesizer, args.gan_minutes, args.gan_model) if "gan" in arms else None
    if "gan" in arms and synthesizer is None:
        raise SystemExit("the gan arm needs --synthesizer gan (or package.module:function), or leave it out of --arms")
    settings = StudySettings(
        data=args.data,
        fractions=tuple(float(f) for f in args.fractions.split(",") if f.strip()),
        seeds=args.seeds,
        arms=arms,
        model=args.model,
        image_size=args.image_size,
        epochs=args.epochs,
        min_steps=args.min_steps,
        minutes_per_run=args.minutes_per_run,
        batch_size=args.batch_size,
        lr=args.lr,
        pretrain_epochs=args.pretrain_epochs,
        pretrain_minutes=args.pretrain_minutes,
        synthetic_ratio=args.synthetic_ratio,
        test_fraction=args.test_fraction,
        num_threads=args.threads,
    )
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = run_study(settings, args.out, synthesizer, quiet=args.quiet)
    document = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "out": str(args.out),
        "threads": torch.get_num_threads(),
        "wall_seconds_this_invocation": time.perf_counter() - started,
        "trained_this_invocation": len(result.trained),
        "skipped_already_done": len(result.skipped),
        **result.document,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    brief = {k: v for k, v in document.items() if k not in ("runs", "settings", "method", "data")}
    print(json.dumps(brief, indent=2))
    replace_section(HERE / "RESULTS.md", "augmentation study", markdown(document))
    print(f"report: {result.report}\njson: {args.json}")
    return document


if __name__ == "__main__":
    main()
