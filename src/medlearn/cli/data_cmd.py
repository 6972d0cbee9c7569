"""``medlearn data audit|hybrid|landmarks|deidentify``: inspect a dataset; make hybrid data with exact masks and
lesion centres; de-identify files before they leave the hospital.

Commands import what they run inside their function: ``medlearn --help`` and the other commands start without
loading torch, MONAI or matplotlib."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

data = typer.Typer(help="Inspect datasets before training on them.", no_args_is_help=True)


@data.command("audit")
def audit_command(
    source: Annotated[str, typer.Argument(help="Folder of class sub-folders, CSV manifest or 'br35h'.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the audit as JSON.")] = None,
    threshold: Annotated[
        int | None, typer.Option(help="pHash Hamming distance that counts as a near-duplicate.")
    ] = None,
    index: Annotated[
        Path | None, typer.Option(help="A 'retrieve index' of these images: near-duplicates by embedding too.")
    ] = None,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            help="Cosine similarity of embedding near-duplicates (default: calibrated on the index's hash duplicates)."
        ),
    ] = None,
) -> None:
    """Report duplicate groups, class balance, image sizes/modes and duplicates that straddle a split; with --index,
    also the image pairs whose embeddings are near-identical but whose perceptual hashes differ."""
    from rich.console import Console
    from rich.table import Table

    from medlearn.data.audit import audit
    from medlearn.data.dedup import DEFAULT_THRESHOLD
    from medlearn.data.sources import load_samples
    from medlearn.utils.atomic import write_text_atomic

    samples = load_samples(source)
    manifest = Path(source) if str(source).lower().endswith(".csv") else None
    report = audit(samples, threshold=threshold if threshold is not None else DEFAULT_THRESHOLD, manifest=manifest)
    console = Console()
    overview = Table(title=f"Audit of {source}", show_header=False)
    overview.add_row("images", str(report.images))
    for label, count in report.class_balance.items():
        overview.add_row(f"class {label}", f"{count} ({100 * count / report.images:.1f}%)")
    overview.add_row("sizes (most common)", ", ".join(f"{k}: {v}" for k, v in report.sizes.items()))
    overview.add_row("smallest / largest size", f"{report.smallest_size} / {report.largest_size}")
    overview.add_row("modes", ", ".join(f"{k}: {v}" for k, v in report.modes.items()))
    overview.add_row("channels", ", ".join(f"{k}: {v}" for k, v in report.channels.items()))
    overview.add_row("bit depths", ", ".join(f"{k}: {v}" for k, v in report.bit_depths.items()))
    overview.add_row("unreadable files", str(len(report.unreadable)))
    overview.add_row(
        f"near-duplicate groups (pHash <= {report.threshold})",
        f"{report.duplicate_groups} groups, {report.images_in_duplicate_groups} images, "
        f"largest {report.largest_duplicate_group}",
    )
    overview.add_row("exact duplicate groups", str(len(report.exact_duplicates)))
    overview.add_row(
        "random 70/15/15 split: test images with a duplicate in train", str(report.random_split_test_leaks)
    )
    overview.add_row("grouped split: test images with a duplicate in train", str(report.grouped_split_test_leaks))
    overview.add_row(
        "groups (duplicates, patients) straddling the CSV's split column", str(len(report.straddling_duplicates))
    )
    console.print(overview)
    for path, reason in report.unreadable:
        console.print(f"[red]unreadable[/red] {path}: {reason}")
    for group in report.exact_duplicates[:10]:
        console.print("[yellow]exact duplicates[/yellow] " + " = ".join(group))
    for group in report.straddling_duplicates:
        console.print("[red]straddles splits[/red] " + ", ".join(group))
    document = report.to_dict()
    if index is not None:
        document["embedding_duplicates"] = _embedding_duplicates(console, index, min_similarity)
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(document, indent=2))
        console.print(f"written {json_out}")


def _embedding_duplicates(console, folder: Path, min_similarity: float | None) -> dict:
    """Print and return the embedding near-duplicates of an index (pairs beyond the hash groups listed)."""
    from dataclasses import asdict

    from medlearn.apps.retrieval.duplicates import (
        beyond_hashes,
        calibrated_min_similarity,
        embedding_duplicates,
        similarity_summary,
    )
    from medlearn.apps.retrieval.index import VectorIndex

    loaded = VectorIndex.load(folder)
    reason = "given"
    if min_similarity is None:
        min_similarity, reason = calibrated_min_similarity(loaded)
    pairs = embedding_duplicates(loaded, min_similarity)
    extra = beyond_hashes(pairs)
    console.print(
        f"embedding near-duplicates (cosine >= {min_similarity}, {reason}; {loaded.embedder.get('name')}): "
        f"{len(pairs)} pairs, {len(extra)} of them not found by perceptual hashing"
    )
    for pair in extra[:10]:
        console.print(f"[yellow]similar content[/yellow] {pair.first} ~ {pair.second} ({pair.similarity:.4f})")
    return {
        "min_similarity": min_similarity,
        "min_similarity_reason": reason,
        "embedder": loaded.embedder.get("name"),
        "pairs": len(pairs),
        "beyond_hashes": [asdict(pair) for pair in extra],
        "nearest_neighbour_similarity": similarity_summary(loaded),
    }


@data.command("hybrid")
def hybrid_command(
    backgrounds: Annotated[str, typer.Argument(help="'br35h' (its tumour-free images), a CSV or a folder of images.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for images/, masks/, points/, pairs.csv (segmentation), detection.csv and lesions.csv."
        ),
    ],
    count: Annotated[int, typer.Option(help="Number of images (backgrounds are reused when there are fewer).")] = 100,
    radii: Annotated[str, typer.Option(help="Lesion radii in mm, comma-separated (cycled).")] = "2,4,8",
    contrasts: Annotated[str, typer.Option(help="Lesion contrasts in background SDs, comma-separated.")] = "1,2,3",
    shape: Annotated[str, typer.Option(help="ellipsoid | irregular.")] = "irregular",
    seed: Annotated[int, typer.Option(help="Seed of placement, shape and texture.")] = 0,
    lesions_per_image: Annotated[
        str,
        typer.Option(
            help="Lesions in each image: a count ('1') or a range drawn uniformly per image ('0-3'; 0 makes "
            "negative images). Lesions of one image never touch; each gets a centre in points/<case>.csv."
        ),
    ] = "1",
) -> None:
    """Insert synthetic lesions of controlled size/contrast into real images; every file is marked hybrid.

    Writes masks for segmentation (pairs.csv) and lesion centres in world mm for detection (detection.csv)."""
    from medlearn.data.hybrid_set import HybridSetSpec, background_files, make_hybrid_set, parse_lesions_per_image
    from medlearn.errors import MedlearnError

    per_image = parse_lesions_per_image(lesions_per_image)
    try:
        spec = HybridSetSpec(
            count=count,
            radii_mm=tuple(float(v) for v in radii.split(",")),
            contrasts=tuple(float(v) for v in contrasts.split(",")),
            shape=shape,
            seed=seed,
            lesions_per_image=per_image,
        )
    except ValueError:
        raise MedlearnError(
            f"--radii and --contrasts take comma-separated numbers, got {radii!r}, {contrasts!r}"
        ) from None
    pairs = make_hybrid_set(background_files(backgrounds), out, spec)
    folder = pairs.parent
    typer.echo(
        f"{count} HYBRID images written; segmentation pairs: {pairs}, detection (lesion centres): "
        f"{folder / 'detection.csv'} (lesion table: {folder / 'lesions.csv'})"
    )


@data.command("landmarks")
def landmarks_command(
    template: Annotated[Path, typer.Argument(help="A 3D template image (e.g. the MNI152 T1).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for images/, landmarks/ (.fcsv), landmarks.csv, cases.csv and with --labels "
            "labels/, boxes/ and boxes.csv."
        ),
    ],
    count: Annotated[int, typer.Option(help="Number of deformed cases.")] = 20,
    spacing: Annotated[float, typer.Option(help="Voxel size of the cases (mm).")] = 3.0,
    seed: Annotated[int, typer.Option(help="Seed of deformations and contrasts (another seed: another set).")] = 0,
    landmarks: Annotated[
        Path | None,
        typer.Option(
            help="Named landmarks of the template (.fcsv, .mrk.json or points CSV with labels, world mm). "
            "Default: medlearn's MNI152 landmarks (the template must be in MNI152 space)."
        ),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="A label map on the template's grid: its structures' boxes are written too.")
    ] = None,
    label_names: Annotated[
        str | None, typer.Option(help="Names of label values 1, 2, ... comma-separated (default: the values).")
    ] = None,
    rotation: Annotated[float, typer.Option(help="Largest rotation about each axis (degrees).")] = 8.0,
    scale: Annotated[float, typer.Option(help="Largest isotropic scaling (fraction).")] = 0.08,
    translation: Annotated[float, typer.Option(help="Largest shift along each axis (mm).")] = 8.0,
    elastic: Annotated[float, typer.Option(help="SD of the elastic control-point displacements (mm).")] = 3.0,
    max_gamma: Annotated[
        float, typer.Option(help="Contrast change: gamma drawn in [1/G, G] per case (1: none).")
    ] = 1.0,
    invert: Annotated[float, typer.Option(help="Share of cases whose contrast is inverted (a T1 made T2-like).")] = 0.0,
) -> None:
    """One template under random smooth deformations (and contrast changes), its landmarks and labels moved
    exactly with it: a localisation set for few-data training and for held-out deformations.

    Every image carries the 'deformed' mark, so runs and reports on it say the cases are one template's."""
    from medlearn.data.deformation import RandomContrast, RandomDeformation
    from medlearn.data.landmark_set import (
        LandmarkSetSpec,
        load_template_labels,
        make_landmark_set,
        read_template_landmarks,
    )
    from medlearn.io import load

    image = load(template)
    spec = LandmarkSetSpec(
        count=count,
        spacing_mm=spacing,
        seed=seed,
        deformation=RandomDeformation(
            rotation_deg=rotation, scale=scale, translation_mm=translation, elastic_mm=elastic
        ),
        contrast=RandomContrast(max_gamma=max_gamma, invert=invert),
    )
    points = read_template_landmarks(landmarks, image)
    names = None if label_names is None else [name.strip() for name in label_names.split(",")]
    structures = None if labels is None else load_template_labels(labels, names)
    table = make_landmark_set(image, out, spec, points, structures)
    extra = f", boxes: {out / 'boxes.csv'}" if structures is not None else ""
    typer.echo(f"{count} DEFORMED cases of {template.name} with {len(points)} landmarks: {table}{extra}")


@data.command("deidentify")
def deidentify_command(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders (DICOM, NIfTI, PNG, JPEG, TIFF).")],
    out: Annotated[Path, typer.Option(help="New (or empty) folder for the de-identified files and the report.")],
    secret_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the secret that seeds the pseudonyms (same secret: same pseudonyms)."),
    ] = None,
    keep_characteristics: Annotated[
        bool, typer.Option(help="Keep age, sex, size, weight (PS3.15 Retain Patient Characteristics Option).")
    ] = False,
    allow_burned_in: Annotated[
        bool, typer.Option(help="Also write objects whose pixels may show identifying text (after review).")
    ] = False,
    linkage: Annotated[
        Path | None, typer.Option(help="Write source -> output and original -> pseudonymous IDs here (keep it safe).")
    ] = None,
) -> None:
    """De-identify images before they leave the hospital: DICOM after PS3.15's Basic Profile (dicognito pseudonyms,
    consistent UIDs, shifted dates; private tags, overlays and free text removed), other formats by dropping every
    header field but geometry; outputs renamed; a report naming no patient."""
    from medlearn.data.deidentify.run import deidentify
    from medlearn.errors import MedlearnError

    secret = None
    if secret_file is not None:
        try:
            secret = secret_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise MedlearnError(f"cannot read the secret ({error.strerror})", secret_file) from None
        if len(secret) < 16:
            raise MedlearnError("the secret is shorter than 16 characters: too easy to guess", secret_file)
    report = deidentify(
        inputs, out, secret=secret, keep_characteristics=keep_characteristics, allow_burned_in=allow_burned_in,
        linkage=linkage,
    )  # fmt: skip
    typer.echo(f"{report.written} files de-identified into {out} (report: {out / 'deidentified.csv'})")
    for row in report.withheld:
        typer.echo(f"not written ({row['kind']}): {row['warning']}", err=True)
    if not report.secret_given:
        typer.echo("no --secret-file: a random secret was used, so a later run cannot give these patients the same "
                   "pseudonyms", err=True)  # fmt: skip
    if linkage is not None:
        typer.echo(f"linkage (re-identifies the outputs; keep it apart): {linkage}")


def register(app: typer.Typer) -> None:
    app.add_typer(data, name="data")
