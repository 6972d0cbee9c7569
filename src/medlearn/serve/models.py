"""What the service serves: trained run folders or exported ``.onnx`` files, each a named model with its task and a
``predict(image)`` that returns a JSON-ready result (and, for segmentation, the mask).

Classification returns the calibrated class probabilities; segmentation the label sizes (ml or mm²), an overlay
PNG and the mask itself. Other tasks are refused by name until they are served.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.errors import MedlearnError
from medlearn.io.image import MedicalImage

SERVED_TASKS = ("classification", "segmentation")


@dataclass
class Prediction:
    """A JSON-ready result, and the mask image for tasks that make one."""

    result: dict
    mask: MedicalImage | None = None


@dataclass
class ServedModel:
    name: str
    task: str
    source: Path
    description: dict
    run: Callable[[MedicalImage], Prediction]
    #: One prediction at a time per model: memory stays bounded on a small machine.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict(self, image: MedicalImage) -> Prediction:
        with self.lock:
            return self.run(image)


def task_of(path: Path) -> str:
    """The task a run folder or an exported file was made for."""
    if path.suffix.lower() == ".onnx":
        from medlearn.inference.export import OnnxRunner

        return OnnxRunner(path).metadata.get("task", "")
    config = path / "config.yaml"
    if not config.is_file():
        raise MedlearnError("neither a run folder (no config.yaml) nor an exported .onnx file", path)
    from medlearn.utils.yaml_files import read_yaml

    return str(read_yaml(config).get("task", ""))


def load_served_model(path: str | Path, name: str | None = None) -> ServedModel:
    path = Path(path)
    if not path.exists():
        raise MedlearnError("no such run folder or model file", path)
    task = task_of(path)
    name = name or (path.stem if path.suffix.lower() == ".onnx" else path.name)
    if task == "classification":
        return _classifier(path, name)
    if task == "segmentation":
        return _segmenter(path, name)
    raise MedlearnError(
        f"serving {task or 'unknown'} models is not supported yet (served: {', '.join(SERVED_TASKS)})", path
    )


def load_served_models(paths: Sequence[str | Path]) -> list[ServedModel]:
    models = [load_served_model(path) for path in paths]
    names = [model.name for model in models]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise MedlearnError(f"two models are named {duplicated[0]!r}: serve differently named folders or files")
    return models


def _classifier(path: Path, name: str) -> ServedModel:
    from medlearn.apps.classification.model import load_classifier

    classifier = load_classifier(path)

    def run(image: MedicalImage) -> Prediction:
        array = classifier.preprocessing(image)[None].astype(np.float32)
        probabilities = classifier.probabilities(array)[0]
        best = int(probabilities.argmax())
        return Prediction(
            {
                "prediction": classifier.classes[best],
                "probabilities": {
                    c: round(float(p), 6) for c, p in zip(classifier.classes, probabilities, strict=True)
                },
                "calibrated": True,
            }
        )

    description = {"classes": list(classifier.classes), "image_size": classifier.preprocessing.image_size}
    return ServedModel(name, "classification", path, description, run)


def _segmenter(path: Path, name: str) -> ServedModel:
    from medlearn.apps.segmentation.model import load_segmenter
    from medlearn.apps.segmentation.predict import label_sizes, overlay_png

    segmenter = load_segmenter(path)
    labels = list(segmenter.plan.labels)

    def run(image: MedicalImage) -> Prediction:
        mask = segmenter.predict(image).mask
        result = {
            "labels": labels,
            "sizes": label_sizes(image, mask, labels),
            "shape": list(image.spatial_shape),
            "spacing_mm": [round(float(s), 4) for s in image.spacing],
            "overlay_png": base64.b64encode(overlay_png(image, mask)).decode("ascii"),
        }
        return Prediction(result, mask)

    description = {"labels": labels, "spatial_dims": segmenter.plan.spatial_dims}
    return ServedModel(name, "segmentation", path, description, run)
