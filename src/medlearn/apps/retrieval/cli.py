"""``medlearn retrieve index|query|evaluate|add|remove``: content-based image retrieval from the CLI.

Commands import what they run inside their function, so ``medlearn --help`` does not load FAISS or torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.apps.common.cli_options import Epochs, MaxMinutes, Quiet

retrieve_app = typer.Typer(
    help="Retrieval: index images by their embeddings, find similar ones, measure precision@k and mAP@10.",
    no_args_is_help=True,
)


@retrieve_app.command("index")
def index_command(
    data: Annotated[str, typer.Option(help="CSV path,label[,group] (or a folder of class folders) to index.")],
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    from_run: Annotated[
        Path | None, typer.Option(help="A 'classify train' run whose penultimate features embed the images.")
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            help="classifier-trunk or self-supervised (with --from-run; chosen from the run), histogram, phash."
        ),
    ] = None,
    kind: Annotated[str | None, typer.Option(help="flat (exact) or hnsw (approximate); default by size.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Without --from-run/--embedder: retrieval-supcon (labels) or retrieval-simclr (self-supervised, "
            "the default when the images have no labels)."
        ),
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="The classifier under the contrastive loss (default cls-multires).")
    ] = None,
    max_minutes: MaxMinutes = None,
    epochs: Epochs = None,
    modality: Annotated[str | None, typer.Option(help="Modality of files that do not record one (JPG/PNG).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Training image size (default: the classifier's).")] = None,
    quiet: Quiet = False,
) -> None:
    """Embed every image and save a checked index (vectors, entries, manifest of checksums). Without --from-run
    or --embedder an embedding is trained first into INDEX/model: cross-entropy + supervised contrastive loss when
    the images have labels, SimCLR (two medical-safe views of each image) when they do not."""
    from medlearn.apps.retrieval.build import build_index, embedder_for_run, train_embedding
    from medlearn.utils.yaml_files import read_yaml

    run_dir = from_run
    if from_run is None and embedder is None:
        run_dir = train_embedding(
            data, out / "model", model=model, base=base, max_minutes=max_minutes, epochs=epochs, modality=modality,
            image_size=image_size, quiet=quiet,
        )  # fmt: skip
        trained = read_yaml(run_dir / "config.yaml")["classification"]["model"]
        typer.echo(f"trained {trained} in {run_dir}")
    chosen = embedder or embedder_for_run(run_dir)
    index, info = build_index(data, out, embedder=chosen, run_dir=run_dir, kind=kind)
    typer.echo(
        f"indexed {info['images']} images with {info['embedder']} ({index.dimension} dimensions, {index.kind}) "
        f"in {info['seconds']:.1f} s: {out}"
    )


@retrieve_app.command("query")
def query_command(
    index: Annotated[Path, typer.Argument(help="An index folder made by 'retrieve index'.")],
    images: Annotated[list[Path], typer.Argument(help="Query images (DICOM, NIfTI, PNG, ...).")],
    out: Annotated[Path, typer.Option(help="Folder for neighbours.csv and neighbours.html.")],
    k: Annotated[int, typer.Option(help="Neighbours per query.")] = 10,
    exclude_duplicates: Annotated[
        bool, typer.Option(help="Leave out the query's own near-duplicates (flagged otherwise).")
    ] = False,
) -> None:
    """The k most similar indexed images of each query, as a CSV and an HTML page of thumbnails."""
    from medlearn.apps.retrieval.query import query_index

    rows = query_index(index, images, out, k=k, exclude_duplicates=exclude_duplicates)
    flagged = sum(row["same_group_as_query"] for row in rows)
    typer.echo(f"{len(images)} queries, top {k}: {out / 'neighbours.csv'}, {out / 'neighbours.html'}")
    if flagged:
        typer.echo(
            f"{flagged} neighbours are near-duplicates of their query (flagged; --exclude-duplicates drops them)"
        )


@retrieve_app.command("evaluate")
def evaluate_command(
    index: Annotated[Path, typer.Argument(help="An index folder made by 'retrieve index'.")],
    data: Annotated[str, typer.Option(help="Test images: CSV path,label[,group] (label: for label relevance).")],
    relevance: Annotated[
        str, typer.Option(help="label (same label, category retrieval) or group (same group: instance retrieval).")
    ] = "label",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here.")] = None,
    report: Annotated[Path | None, typer.Option(help="HTML report (default: beside --json, same name).")] = None,
) -> None:
    """precision@1/5/10, recall@10 and mAP@10 (same label relevant by default; the query's duplicates left out),
    beside the classical embedders (histogram/texture, perceptual hash) on the same index images."""
    import json

    from medlearn.apps.retrieval.evaluate import evaluate_index
    from medlearn.apps.retrieval.report import write_evaluation_report
    from medlearn.utils.atomic import write_text_atomic

    evaluation = evaluate_index(index, data, relevance=relevance)
    summary = evaluation.summary
    rows = [(summary["embedder"], summary), *summary["baseline"].items()]
    for name, scores in rows:
        typer.echo(
            f"{name:<18} P@1 {scores['precision_at_1']:.3f}  P@10 {scores['precision_at_10']:.3f}  "
            f"mAP@10 {scores['map_at_10']:.3f}  R@10 {scores['recall_at_10']:.3f}  {scores['query_ms']:.2f} ms/query"
        )
    typer.echo(f"relevant: {summary['relevance']}; {summary['map_definition']}")
    if summary.get("baseline_comparison"):
        typer.echo(summary["baseline_comparison"]["text"])
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(summary, indent=2) + "\n")
        typer.echo(f"written {json_out}")
    report = report or (json_out.with_suffix(".html") if json_out is not None else None)
    if report is not None:
        write_evaluation_report(evaluation, report, data)
        typer.echo(f"report {report}")


@retrieve_app.command("add")
def add_command(
    index: Annotated[Path, typer.Argument(help="An index folder.")],
    data: Annotated[str, typer.Option(help="CSV path,label[,group] of the images to add.")],
) -> None:
    """Embed more images with the index's own embedder and add them."""
    from medlearn.apps.retrieval.build import add_to_index

    grown = add_to_index(index, data)
    typer.echo(f"the index now holds {len(grown)} images")


@retrieve_app.command("remove")
def remove_command(
    index: Annotated[Path, typer.Argument(help="An index folder.")],
    paths: Annotated[list[str], typer.Argument(help="Paths of indexed images to remove.")],
) -> None:
    """Remove images from the index (by path)."""
    from medlearn.apps.retrieval.build import remove_from_index

    shrunk = remove_from_index(index, paths)
    typer.echo(f"the index now holds {len(shrunk)} images")


def register(app: typer.Typer) -> None:
    app.add_typer(retrieve_app, name="retrieve")
