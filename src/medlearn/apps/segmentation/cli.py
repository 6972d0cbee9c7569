"""``medlearn segment plan|train|evaluate|predict|models``: self-configuring segmentation from the CLI.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Precision, Quiet, Resume, parse_overrides
from medlearn.apps.common.plan_display import print_plan
from medlearn.errors import MedlearnError

segment = typer.Typer(help="Segmentation: plan, train, evaluate and apply 2D/3D models.", no_args_is_help=True)


@segment.command("plan")
def plan_command(
    data: Annotated[str, typer.Argument(help="CSV with image,mask columns or a folder with images/ and masks/.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the fingerprint and plan as JSON.")] = None,
    modality: Annotated[str | None, typer.Option(help="Modality if the files do not record it (CT, MR, ...).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a plan value, e.g. --set batch_size=4 (JSON value).")
    ] = None,
) -> None:
    """Fingerprint the dataset (spacings, sizes, foreground intensities, classes) and print the plan."""
    from medlearn.data.sources import load_pairs
    from medlearn.planning.fingerprint import fingerprint
    from medlearn.planning.plan import make_plan
    from medlearn.utils.atomic import write_text_atomic

    fp = fingerprint(load_pairs(data), modality=modality)
    plan = make_plan(fp, parse_overrides(overrides or []))
    print_plan(plan, fp, f"Segmentation plan for {data}")
    if json_out is not None:
        write_text_atomic(json_out, json.dumps({"fingerprint": fp.to_dict(), "plan": plan.to_dict()}, indent=2))


@segment.command("train")
def train_command(
    data: Annotated[
        str | None, typer.Option(help="Training pairs: CSV (image,mask[,group]) or a folder with images/ and masks/.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create.")] = None,
    model: Annotated[str | None, typer.Option(help="Segmentation model (see 'medlearn segment models').")] = None,
    val_data: Annotated[
        str | None, typer.Option("--val", help="Validation pairs (default: hold out a share of the cases).")
    ] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Patch batches per epoch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    modality: Annotated[str | None, typer.Option(help="Modality if the files do not record it (CT, MR, ...).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a plan value, e.g. --set patch_size=[96,96].")
    ] = None,
    tta: Annotated[
        bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation at prediction.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, initialisation and patch sampling.")] = None,
    crop_with: Annotated[
        Path | None,
        typer.Option(help="Localise, then segment: a 'localise train' box run whose box is cut out of every image."),
    ] = None,
    crop_structure: Annotated[
        str | None, typer.Option(help="The localiser's structure to crop to (default: the box around all).")
    ] = None,
    crop_margin: Annotated[float | None, typer.Option(help="Margin around the localised box, mm (default 10).")] = None,
    precision: Precision = None,
    config: Annotated[Path | None, typer.Option(help="YAML with 'segmentation:' and 'training:' settings.")] = None,
    resume: Resume = None,
    quiet: Quiet = False,
) -> None:
    """Fingerprint the data, plan, train on patches and report on the validation cases."""
    from medlearn.apps.segmentation.train import SegmentationTrainRequest, resume_segmenter, train_segmenter

    if resume is not None:
        outcome = resume_segmenter(resume, quiet=quiet)
    else:
        if data is None or out is None:
            raise MedlearnError("segment train needs --data and --out (or --resume RUN_DIR)")
        request_overrides = {
            "segmentation": {
                "model": model,
                "modality": modality,
                "batches_per_epoch": batches_per_epoch,
                "plan_overrides": parse_overrides(overrides or []) or None,
                "tta": tta,
                "crop_run": str(crop_with.resolve()) if crop_with is not None else None,
                "crop_structure": crop_structure,
                "crop_margin_mm": crop_margin,
            },
            "training": {"max_minutes": max_minutes, "epochs": epochs, "lr": lr, "seed": seed, "precision": precision},
        }
        request = SegmentationTrainRequest.build(
            data=data, out=out, val_data=val_data, config_file=config, overrides=request_overrides
        )
        outcome = train_segmenter(request, quiet=quiet, show_plan=print_plan)
    if outcome.metrics:
        typer.echo(
            f"validation Dice {_number(outcome.metrics.get('dice'))}, HD95 {_number(outcome.metrics.get('hd95_mm'))} mm"
        )
        _echo_baselines(outcome.metrics)
    typer.echo(f"run: {outcome.run_dir}")
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")


@segment.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'segment train'.")],
    data: Annotated[str, typer.Option(help="Labelled pairs: CSV (image,mask) or a folder with images/ and masks/.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here as JSON.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: RUN_DIR/evaluation-<data>.html).")
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = None,
    shift: Annotated[
        str | None,
        typer.Option(
            help="Re-score on shifted copies of the cases: scale:F, offset:F, noise:F, resolution:F, "
            "comma-separated (e.g. scale:1.3,noise:0.02)."
        ),
    ] = None,
    atlas: Annotated[
        Path | None, typer.Option(help="An atlas image: atlas-based segmentation as one more baseline.")
    ] = None,
    atlas_labels: Annotated[Path | None, typer.Option(help="The atlas's label map (with --atlas).")] = None,
    atlas_method: Annotated[str, typer.Option(help="Registration of the atlas: demons, bspline, affine.")] = "demons",
) -> None:
    """Dice, IoU, HD95 and ASD (mm) per case and class, in each image's own geometry, beside the classical
    baselines (global threshold, Otsu); JSON and HTML report with the failure analysis."""
    from medlearn.apps.segmentation.evaluate import evaluate_run
    from medlearn.evaluation.shifts import parse_shift

    parsed = parse_shift(shift) if shift else None
    chosen_atlas = _atlas(atlas, atlas_labels, atlas_method)
    summary, report_path = evaluate_run(
        run_dir, data, json_path=json_out, report_path=report, tta=tta, shift=parsed, atlas=chosen_atlas
    )
    if parsed is not None:
        typer.echo(f"   shift: {parsed.text}")
    unit = summary.get("distance_unit", "mm")
    for name in ("dice", "iou", "hd95_mm", "asd_mm"):
        label = name.replace("_mm", f" ({unit})")
        typer.echo(f"{label:>10}: {_number(summary.get(name))}")
    typer.echo(
        f"     cases: {summary['cases']} ({summary['cases_with_missed_structure']} with a missed structure, "
        f"{summary['cases_with_false_positive']} with a false positive on an empty truth)"
    )
    _echo_baselines(summary)
    typer.echo(f"report: {report_path}")


def _echo_baselines(summary: dict) -> None:
    """The baselines' Dice and the plain-words comparison (or why there is no baseline)."""
    for name, values in (summary.get("baseline") or {}).items():
        typer.echo(f"baseline {name}: Dice {_number(values.get('dice'))}")
    comparison = summary.get("baseline_comparison")
    if comparison:
        typer.echo(comparison["text"])
    elif summary.get("baseline_note"):
        typer.echo(summary["baseline_note"])


@segment.command("predict")
def predict_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by 'segment train'.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files, DICOM series folders or folders of images.")],
    out: Annotated[Path, typer.Option(help="Folder for masks, DICOM SEG objects and overlays.")] = Path("masks"),
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first unreadable input instead of skipping it.")] = False,
) -> None:
    """Write a mask per input in its own format and geometry (DICOM in: DICOM SEG too) and a PNG overlay."""
    from medlearn.apps.segmentation.predict import predict_images

    outcome = predict_images(run_dir, inputs, out, tta=tta, strict=strict)
    for path, reason in outcome.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"{len(outcome.rows)} masks written to {out} (list: {outcome.table})")


@segment.command("models")
def models_command() -> None:
    """List the registered segmentation models."""
    from medlearn.models import list_models

    for entry in list_models("segmentation"):
        typer.echo(f"{entry.name:<16} {entry.summary}")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def register(app: typer.Typer) -> None:
    app.add_typer(segment, name="segment")


@segment.command("atlas")
def atlas_command(
    atlas: Annotated[Path, typer.Option(help="The atlas image (a labelled example or a template).")],
    atlas_labels: Annotated[Path, typer.Option(help="The atlas's label map, on its grid.")],
    data: Annotated[str, typer.Option(help="Images to segment: CSV image,mask (a mask may be left empty).")],
    out: Annotated[Path, typer.Option(help="Folder for the masks (input format, <stem>_atlas.*).")],
    method: Annotated[
        str, typer.Option(help="Registration: demons, bspline, affine (see 'register methods').")
    ] = "demons",
    registration_run: Annotated[
        Path | None, typer.Option(help="A 'register train' run to register with instead of --method.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Metrics (where masks are given) as JSON.")] = None,
) -> None:
    """Atlas-based segmentation (no training): register the atlas to each image and carry its labels across;
    Dice/IoU/HD95/ASD against the masks the CSV gives."""
    import json

    from medlearn.apps.segmentation.atlas import segment_with_atlas
    from medlearn.data.sources import load_samples
    from medlearn.utils.atomic import write_text_atomic

    chosen = _atlas(atlas, atlas_labels, method, registration_run)
    samples = load_samples(data)
    summary = segment_with_atlas(chosen, samples, out)
    line = f"{summary['cases']} images segmented by {chosen.name} into {out}, {summary['seconds']:.1f} s per image"
    if summary.get("dice") is not None:
        line += f"; Dice {summary['dice']:.3f}, HD95 {summary['hd95_mm']:.2f} mm"
    typer.echo(line)
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(summary, indent=2) + "\n")
        typer.echo(f"written {json_out}")


def _atlas(image: Path | None, labels: Path | None, method: str, registration_run: Path | None = None):
    """The atlas of the options, or None; an atlas without its labels (or the reverse) is an error."""
    from medlearn.errors import MedlearnError

    if image is None and labels is None:
        return None
    if image is None or labels is None:
        raise MedlearnError("--atlas and --atlas-labels go together")
    from medlearn.apps.segmentation.atlas import Atlas

    registerer = None
    if registration_run is not None:
        from medlearn.apps.registration.learned import LearnedRegistration

        registerer = LearnedRegistration.from_run_dir(registration_run)
    return Atlas.load(image, labels, method=method, registerer=registerer)
