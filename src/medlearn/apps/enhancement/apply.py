"""``enhance apply``: enhanced copies of images and volumes, in each input's own format where medlearn can
write it, marked as enhanced in their metadata.

NIfTI in -> NIfTI out (header ``descrip`` gains the ``enhanced`` mark), NRRD -> NRRD (a
``medlearn_enhanced`` key/value field), PNG/JPEG/BMP and 8/16-bit 2D TIFF -> PNG (a ``medlearn_enhanced``
text chunk; JPEG is not rewritten as JPEG, whose lossy compression would undo the restoration), DICOM and
other TIFF -> NIfTI. Volumes are enhanced slice by slice along their thickest axis; super-resolution outputs
have the finer in-plane spacing in their affine. ``enhanced.csv`` lists what was written.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.apps.enhancement.model import load_enhancer
from medlearn.data.files import image_inputs
from medlearn.data.outputs import distinct_stems, output_suffix, stem_of, write_table
from medlearn.errors import MedlearnError
from medlearn.io import load, save
from medlearn.utils.atomic import atomic_path, write_bytes_atomic

MARK_KEY = "medlearn_enhanced"


@dataclass
class ApplyOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None


def apply_enhancer(run_dir: Path, inputs: list[Path], out_dir: Path, *, strict: bool = False) -> ApplyOutcome:
    """Enhance every input; unreadable ones are skipped and listed (``strict``: the first one fails)."""

    enhancer = load_enhancer(run_dir)
    out_dir = Path(out_dir)
    outcome = ApplyOutcome()
    paths = image_inputs(inputs)
    stems = distinct_stems(paths)
    for path in paths:
        try:
            image = load(path, modality=enhancer.settings.modality)
            enhanced = enhancer.enhance(image)
            target = output_path(path, image, out_dir, stems[path])
            out_dir.mkdir(parents=True, exist_ok=True)
            _save_marked(enhanced, target, enhancer.description())
        except MedlearnError as error:
            if strict:
                raise
            outcome.skipped.append((str(path), str(error)))
            continue
        outcome.rows.append(
            {
                "input": str(path),
                "output": str(target),
                "task": enhancer.settings.task,
                "degradation": enhancer.settings.degradation,
                "model": enhancer.settings.model,
                "input_shape": "x".join(map(str, image.spatial_shape)),
                "output_shape": "x".join(map(str, enhanced.spatial_shape)),
            }
        )
    if not outcome.rows:
        first = f" (first: {outcome.skipped[0][1]})" if outcome.skipped else ""
        raise MedlearnError(f"no input could be enhanced{first}")
    outcome.table = write_table(out_dir / "enhanced.csv", outcome.rows)
    return outcome


def output_path(path: Path, image, out_dir: Path, stem: str | None = None) -> Path:
    """``<out_dir>/<stem>_enhanced<suffix>`` in the input's format where medlearn can write it."""
    return out_dir / f"{stem or stem_of(path)}_enhanced{output_suffix(path, image)}"


def _save_marked(image, target: Path, description: dict) -> Path:
    """``medlearn.io.save`` then the enhancement mark in the format's own metadata."""

    save(image, target)
    name = target.name.lower()
    if name.endswith(".png"):
        _mark_png(target, description)
    elif name.endswith((".nii", ".nii.gz")):
        _mark_nifti(target, description)
    elif name.endswith(".nrrd"):
        _mark_nrrd(target, description)
    return target


def _mark_png(path: Path, description: dict) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    with Image.open(path) as im:
        im.load()
        info = PngInfo()
        for key, value in (getattr(im, "text", {}) or {}).items():
            info.add_text(key, value)
        info.add_text(MARK_KEY, json.dumps(description))
        buffer = io.BytesIO()
        im.save(buffer, format="PNG", pnginfo=info)
    write_bytes_atomic(path, buffer.getvalue())


def _mark_nifti(path: Path, description: dict) -> None:
    """The ``enhanced`` provenance mark in ``descrip`` (80 bytes: no room for the description)."""
    import nibabel as nib

    img = nib.load(path)
    descrip = bytes(img.header.get("descrip", b"")).decode("latin-1", "replace").rstrip("\x00 ")
    if " enhanced" in descrip:  # medlearn's NIfTI writer already records the mark
        return
    header = img.header.copy()
    header["descrip"] = f"{descrip} enhanced"[-79:].encode()
    payload = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, header).to_bytes()
    if path.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6)
    write_bytes_atomic(path, payload)


def _mark_nrrd(path: Path, description: dict) -> None:
    import nrrd

    data, header = nrrd.read(str(path), index_order="F")
    header[MARK_KEY] = json.dumps(description)
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), data, header, index_order="F")


def read_enhancement_mark(path: str | Path) -> dict | str | None:
    """The enhancement mark of an output, if any: PNG/NRRD hold the whole description (task, degradation,
    model, run); NIfTI's 80-byte ``descrip`` only the mark, read back as ``{"by": "medlearn enhance"}``."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            text = (getattr(im, "text", {}) or {}).get(MARK_KEY)
        return json.loads(text) if text else None
    if name.endswith(".nrrd"):
        import nrrd

        text = nrrd.read_header(str(path)).get(MARK_KEY)
        return json.loads(text) if text else None
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        descrip = bytes(nib.load(path).header.get("descrip", b"")).decode("latin-1", "replace")
        return {"by": "medlearn enhance"} if " enhanced" in descrip else None
    return None
