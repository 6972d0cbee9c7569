"""``medlearn serve MODEL...``: trained runs or exported models behind an authenticated HTTP API and a web viewer
(:mod:`medlearn.serve`). It listens on localhost unless told otherwise: put it behind a TLS-terminating proxy
before opening it to a network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    models: Annotated[
        list[Path], typer.Argument(help="Run folders or exported .onnx files (classification, segmentation).")
    ],
    token_file: Annotated[Path, typer.Option(help="Bearer tokens, one per line (32+ characters; chmod 600).")],
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    audit_log: Annotated[Path | None, typer.Option(help="Append one JSON line per request here.")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload.")] = 512.0,
    dicom_port: Annotated[
        int | None, typer.Option(help="Also receive DICOM (C-STORE) on this port and run a model on each series.")
    ] = None,
    dicom_model: Annotated[str | None, typer.Option(help="The served model for received series.")] = None,
    dicom_out: Annotated[Path, typer.Option(help="Where received series' results go.")] = Path("dicom-results"),
    dicom_ae_title: Annotated[str, typer.Option(help="This node's AE title.")] = "MEDLEARN",
    dicom_allow: Annotated[
        str | None, typer.Option(help="Comma-separated calling AE titles allowed to send (all others refused).")
    ] = None,
) -> None:
    """Serve models: GET / (viewer), GET /models, POST /models/NAME/predict (an image file; ?output=mask); with
    --dicom-port, also a DICOM node that runs --dicom-model on every series sent to it."""
    import uvicorn

    from medlearn.serve.app import create_app
    from medlearn.serve.auth import TokenStore
    from medlearn.serve.models import load_served_models

    tokens = TokenStore.from_file(token_file)
    served = load_served_models(models)
    app = create_app(served, tokens, max_upload_mb=max_upload_mb, audit_log=audit_log)
    names = ", ".join(f"{m.name} ({m.task})" for m in served)
    typer.echo(f"serving {names} on http://{host}:{port}/ ({len(tokens.tokens)} tokens)")
    node = None
    if dicom_port is not None:
        node = _dicom_node(served, dicom_model, dicom_out, dicom_ae_title, dicom_allow)
        node.start(host, dicom_port)
        typer.echo(f"DICOM node {dicom_ae_title} on {host}:{dicom_port} runs {node.model.name}; results in {dicom_out}")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if node is not None:
            node.stop()


def _dicom_node(served, model_name: str | None, out: Path, ae_title: str, allow: str | None):
    from medlearn.errors import MedlearnError
    from medlearn.serve.dicom_node import DicomNode

    by_name = {model.name: model for model in served}
    if model_name is None and len(served) == 1:
        model_name = served[0].name
    if model_name not in by_name:
        raise MedlearnError(f"--dicom-model must name one of the served models: {', '.join(by_name)}")
    allowed = {title.strip() for title in (allow or "").split(",") if title.strip()}
    return DicomNode(by_name[model_name], out, ae_title=ae_title, allowed=allowed)
