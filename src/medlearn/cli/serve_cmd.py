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
) -> None:
    """Serve models: GET / (viewer), GET /models, POST /models/NAME/predict (an image file; ?output=mask)."""
    import uvicorn

    from medlearn.serve.app import create_app
    from medlearn.serve.auth import TokenStore
    from medlearn.serve.models import load_served_models

    tokens = TokenStore.from_file(token_file)
    served = load_served_models(models)
    app = create_app(served, tokens, max_upload_mb=max_upload_mb, audit_log=audit_log)
    names = ", ".join(f"{m.name} ({m.task})" for m in served)
    typer.echo(f"serving {names} on http://{host}:{port}/ ({len(tokens.tokens)} tokens)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
