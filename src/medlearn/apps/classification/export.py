"""``medlearn export`` of a classification run: the network with the class names, preprocessing and calibration
temperature written into the file, so ``classify predict model.onnx ...`` needs no run folder."""

from __future__ import annotations

from pathlib import Path

from medlearn.apps.classification.model import TrainedClassifier
from medlearn.apps.common.export import export_metadata, export_network, window_example
from medlearn.data.preload import preload
from medlearn.data.sources import load_samples
from medlearn.inference.export import ExportSpec

#: Real images the export check runs, at most.
CHECK_IMAGES = 32


def export_spec(run_dir: Path, check_data: str | None = None) -> ExportSpec:
    classifier = TrainedClassifier.from_run_dir(run_dir)
    size, channels = classifier.preprocessing.image_size, classifier.preprocessing.channels
    model = export_network(classifier.model)
    real = None
    if check_data is not None:
        samples = load_samples(check_data, labelled=False)[:CHECK_IMAGES]
        real = preload(samples, classifier.preprocessing, show_progress=False).arrays
    settings = (classifier.config or {}).get("classification", {})
    metadata = export_metadata(
        "classification", settings.get("model", type(model).__name__), run_dir,
        "logits (softmax after dividing by the temperature gives calibrated probabilities)",
        classes=classifier.classes, classification=settings, temperature=classifier.temperature,
    )  # fmt: skip
    return ExportSpec(model, window_example(channels, (size, size)), "logits", metadata, real_inputs=real)
