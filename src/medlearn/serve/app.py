"""The HTTP application of ``medlearn serve`` (FastAPI).

- ``GET /health``: liveness, no token;
- ``GET /``: the web viewer (a static page; it asks for a token and sends it with every call);
- ``GET /models``: the served models with their task and classes or labels;
- ``POST /models/{name}/predict``: one uploaded image (DICOM file, NIfTI, NRRD, PNG/JPEG/TIFF, or a ZIP of a DICOM
  series) -> JSON (classification: calibrated probabilities; segmentation: label sizes and an overlay PNG);
  ``?output=mask`` returns the mask file instead (NIfTI for volumes, PNG for 2D images).

Every call but ``/health`` and ``/`` needs ``Authorization: Bearer <token>``. A bad upload gets a 400 with one
line naming the problem, never a traceback; an upload above the size limit a 413. Uploads live in a temporary
folder for the time of the request only. The audit log (JSON lines) records time, token digest, model, status,
seconds and the image's dimensions: no file name, no patient data.
"""

import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Header, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

import medlearn
from medlearn.errors import MedlearnError
from medlearn.serve.auth import TokenStore
from medlearn.serve.models import ServedModel
from medlearn.serve.viewer import VIEWER_HTML

#: Uploaded file suffixes the loader understands (``.zip``: a DICOM series).
UPLOAD_SUFFIXES = (
    ".dcm",
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".zip",
)
CHUNK = 1 << 20


def create_app(
    models: Sequence[ServedModel],
    tokens: TokenStore,
    *,
    max_upload_mb: float = 512,
    audit_log: Path | None = None,
) -> FastAPI:
    app = FastAPI(title="medlearn", version=medlearn.__version__, docs_url=None, redoc_url=None, openapi_url=None)
    by_name = {model.name: model for model in models}
    limit = int(max_upload_mb * (1 << 20))

    def caller(authorization: Annotated[str | None, Header()] = None) -> str:
        token_id = tokens.identify(authorization)
        if token_id is None:
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is required",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return token_id

    def audit(entry: dict) -> None:
        if audit_log is not None:
            with open(audit_log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}) + "\n")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "models": len(by_name), "medlearn": medlearn.__version__}

    @app.get("/", response_class=HTMLResponse)
    def viewer() -> str:
        return VIEWER_HTML

    @app.get("/models")
    def list_models(token: Annotated[str, Depends(caller)]) -> list[dict]:
        return [{"name": m.name, "task": m.task, **m.description} for m in by_name.values()]

    @app.post("/models/{name}/predict")
    def predict(
        name: str,
        token: Annotated[str, Depends(caller)],
        file: Annotated[UploadFile, File()],
        output: Annotated[str, Query(pattern="^(json|mask)$")] = "json",
    ) -> Response:
        started = time.perf_counter()
        entry = {"token": token, "model": name, "output": output}
        model = by_name.get(name)
        if model is None:
            audit({**entry, "status": 404})
            raise HTTPException(404, f"no model named {name!r}; GET /models lists them")
        if output == "mask" and model.task != "segmentation":
            raise HTTPException(400, f"{model.task} models make no mask")
        try:
            with tempfile.TemporaryDirectory(prefix="medlearn-serve-") as folder:
                image = _read_upload(file, Path(folder), limit)
                prediction = model.predict(image)
                entry["shape"] = list(image.spatial_shape)
                if output == "mask":
                    body, media = _mask_bytes(prediction.mask, Path(folder))
                    audit({**entry, "status": 200, "seconds": round(time.perf_counter() - started, 3)})
                    return Response(body, media_type=media)
        except _TooLarge:
            audit({**entry, "status": 413})
            raise HTTPException(413, f"the upload is larger than {max_upload_mb:g} MB") from None
        except MedlearnError as error:
            audit({**entry, "status": 400})
            raise HTTPException(400, error.problem) from None
        seconds = round(time.perf_counter() - started, 3)
        audit({**entry, "status": 200, "seconds": seconds})
        return JSONResponse({"model": name, "task": model.task, **prediction.result, "seconds": seconds})

    return app


class _TooLarge(Exception):
    pass


def _suffix(filename: str | None) -> str:
    name = (filename or "").lower()
    for suffix in sorted(UPLOAD_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return ".dcm" if not Path(name).suffix else Path(name).suffix  # DICOM files often have no suffix


def _read_upload(upload: UploadFile, folder: Path, limit: int):
    """The uploaded image, read from a temporary copy (the client's file name is not kept: only its suffix)."""
    from medlearn.io import load

    suffix = _suffix(upload.filename)
    if suffix not in UPLOAD_SUFFIXES:
        raise MedlearnError(f"cannot read {suffix} uploads; send one of {', '.join(UPLOAD_SUFFIXES)}")
    target = folder / f"upload{suffix}"
    size = 0
    with open(target, "wb") as handle:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            handle.write(chunk)
    if size == 0:
        raise MedlearnError("the upload is empty")
    if suffix == ".zip":
        return load(_unpack_series(target, folder / "series", limit))
    return load(target)


def _unpack_series(archive: Path, folder: Path, limit: int) -> Path:
    """A ZIP of one DICOM series, unpacked safely: no path may leave the folder, and the unpacked size is bounded."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > 4 * limit:
                raise _TooLarge
            folder.mkdir()
            for number, member in enumerate(members):
                (folder / f"{number:06d}.dcm").write_bytes(bundle.read(member))  # names from the archive never used
    except zipfile.BadZipFile:
        raise MedlearnError("the upload is not a readable ZIP archive") from None
    if not members:
        raise MedlearnError("the ZIP archive holds no file")
    return folder


def _mask_bytes(mask, folder: Path) -> tuple[bytes, str]:
    from medlearn.io import save

    if mask.spatial_ndim == 3:
        return save(mask, folder / "mask.nii.gz").read_bytes(), "application/gzip"
    return save(mask, folder / "mask.png").read_bytes(), "image/png"
