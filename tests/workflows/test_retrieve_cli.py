"""The retrieve commands end to end on real Br35H images: index with a classifier's trunk and with the classical
embedders, query (CSV + HTML, duplicates flagged or left out), evaluate (contract keys, leakage exclusion), add and
remove, and the refusals (another model's index, a corrupted file, k too large)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from medlearn.cli.main import main

PER_CLASS, TEST_PER_CLASS = 24, 6


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def br35h_sets(br35h_root: Path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("retrieval")
    train, test = [], []
    for label in ("no", "yes"):
        files = sorted((br35h_root / label).glob("*.jpg"))[: PER_CLASS + TEST_PER_CLASS]
        for i, file in enumerate(files):
            (train if i < PER_CLASS else test).append((str(file), label))
    return {
        "folder": folder,
        "train": _write(folder / "train.csv", train),
        "test": _write(folder / "test.csv", test),
        "extra": _write(folder / "extra.csv", test[:2]),
        "query": Path(test[0][0]),
        "indexed": Path(train[0][0]),
    }


@pytest.fixture(scope="module")
def classifier_run(br35h_sets: dict, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cls"
    command = ["classify", "train", "--data", str(br35h_sets["train"]), "--out", str(out), "--model", "cls-shallow"]
    assert main([*command, "--epochs", "2", "--image-size", "64", "--modality", "MR", "--quiet"]) == 0
    return out


def test_index_query_and_evaluate_with_a_classifier_trunk(br35h_sets: dict, classifier_run: Path, tmp_path, capsys):
    index = tmp_path / "index"
    assert (
        main(
            [
                "retrieve",
                "index",
                "--data",
                str(br35h_sets["train"]),
                "--out",
                str(index),
                "--from-run",
                str(classifier_run),
            ]
        )
        == 0
    )  # noqa: E501
    assert "classifier-trunk" in capsys.readouterr().out
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["count"] == 2 * PER_CLASS and manifest["embedder"]["name"] == "classifier-trunk"
    out = tmp_path / "q"
    assert main(["retrieve", "query", str(index), str(br35h_sets["indexed"]), "--out", str(out), "--k", "5"]) == 0
    with open(out / "neighbours.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and rows[0]["path"] == str(br35h_sets["indexed"].resolve())  # itself, first
    assert rows[0]["same_group_as_query"] == "True"  # ... and flagged as its own duplicate
    assert "data:image/png;base64" in (out / "neighbours.html").read_text()
    assert (
        main(
            [
                "retrieve",
                "query",
                str(index),
                str(br35h_sets["indexed"]),
                "--out",
                str(out),
                "--k",
                "5",
                "--exclude-duplicates",
            ]
        )
        == 0
    )  # noqa: E501
    with open(out / "neighbours.csv", newline="") as handle:
        assert all(row["same_group_as_query"] == "False" for row in csv.DictReader(handle))
    metrics = tmp_path / "m.json"
    assert main(["retrieve", "evaluate", str(index), "--data", str(br35h_sets["test"]), "--json", str(metrics)]) == 0
    summary = json.loads(metrics.read_text())
    for key in ("precision_at_1", "precision_at_5", "precision_at_10", "map_at_10", "recall_at_10", "baseline"):
        assert key in summary
    assert set(summary["baseline"]) == {"histogram", "phash"} and "min(k, R)" in summary["map_definition"]
    assert 0.0 <= summary["map_at_10"] <= 1.0 and summary["queries"] == 2 * TEST_PER_CLASS


def test_evaluating_the_indexed_images_themselves_never_counts_the_copy(br35h_sets: dict, tmp_path):
    index = tmp_path / "index"
    assert (
        main(["retrieve", "index", "--data", str(br35h_sets["train"]), "--out", str(index), "--embedder", "phash"]) == 0
    )  # noqa: E501
    metrics = tmp_path / "m.json"
    assert main(["retrieve", "evaluate", str(index), "--data", str(br35h_sets["train"]), "--json", str(metrics)]) == 0
    summary = json.loads(metrics.read_text())
    # with the copy left out a perceptual hash is no oracle: without the exclusion every query would find itself
    assert summary["excluded_per_query"] >= 1 and summary["precision_at_1"] < 0.95


def test_add_remove_and_the_refusals(br35h_sets: dict, classifier_run: Path, tmp_path, capsys):
    index = tmp_path / "index"
    assert (
        main(["retrieve", "index", "--data", str(br35h_sets["train"]), "--out", str(index), "--embedder", "histogram"])
        == 0
    )  # noqa: E501
    assert main(["retrieve", "add", str(index), "--data", str(br35h_sets["extra"])]) == 0
    assert f"holds {2 * PER_CLASS + 2} images" in capsys.readouterr().out
    assert main(["retrieve", "remove", str(index), str(br35h_sets["query"])]) == 0
    assert f"holds {2 * PER_CLASS + 1} images" in capsys.readouterr().out
    out = tmp_path / "q"
    assert main(["retrieve", "query", str(index), str(br35h_sets["query"]), "--out", str(out), "--k", "500"]) == 2
    assert "k=500" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(index, broken)
    (broken / "entries.csv").write_text((broken / "entries.csv").read_text().replace("yes", "no"))
    assert main(["retrieve", "query", str(broken), str(br35h_sets["query"]), "--out", str(out)]) == 2
    assert "checksum" in capsys.readouterr().err
    assert main(["retrieve", "query", str(index), str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    assert "no such image" in capsys.readouterr().err


def test_data_audit_uses_an_index_for_near_duplicates(br35h_sets: dict, tmp_path):
    index = tmp_path / "index"
    assert (
        main(["retrieve", "index", "--data", str(br35h_sets["train"]), "--out", str(index), "--embedder", "histogram"])
        == 0
    )  # noqa: E501
    report = tmp_path / "audit.json"
    assert main(["data", "audit", str(br35h_sets["train"]), "--index", str(index), "--json", str(report)]) == 0
    found = json.loads(report.read_text())["embedding_duplicates"]
    assert found["embedder"] == "histogram" and found["pairs"] >= len(found["beyond_hashes"])
    assert found["min_similarity_reason"] != "given" and 0.0 < found["min_similarity"] <= 1.0
    assert 0.0 < found["nearest_neighbour_similarity"]["p50"] <= 1.0


def test_index_trains_an_embedding_for_retrieval_when_no_run_is_given(br35h_sets: dict, tmp_path, capsys):
    index = tmp_path / "index"
    command = ["retrieve", "index", "--data", str(br35h_sets["train"]), "--out", str(index), "--epochs", "1"]
    assert main([*command, "--image-size", "64", "--modality", "MR", "--base", "cls-shallow", "--quiet"]) == 0
    assert "trained retrieval-supcon" in capsys.readouterr().out
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["embedder"]["name"] == "classifier-trunk" and manifest["embedder"]["run"].endswith("model")
    assert (index / "model" / "config.yaml").is_file()


def _unlabelled_copies(br35h_root: Path, folder: Path, originals: int = 4) -> Path:
    """A CSV ``path,group`` of images and two altered copies of each (brighter; cropped and resized back), one
    group per original, plus one image alone in its group."""
    from PIL import Image, ImageEnhance

    rows = []
    files = sorted((br35h_root / "yes").glob("*.jpg"))[: originals + 1]
    for number, file in enumerate(files):
        image = Image.open(file).convert("L").resize((128, 128))
        variants = [image] if number == originals else [
            image,
            ImageEnhance.Brightness(image).enhance(1.15),
            image.crop((6, 6, 122, 122)).resize((128, 128)),
        ]  # fmt: skip
        for copy, variant in enumerate(variants):
            path = folder / f"case{number}_{copy}.png"
            variant.save(path)
            rows.append((str(path), f"case{number}"))
    csv_path = folder / "unlabelled.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group"])
        writer.writerows(rows)
    return csv_path


def test_instance_retrieval_finds_the_rest_of_the_querys_group(br35h_root: Path, tmp_path, capsys):
    images = _unlabelled_copies(br35h_root, tmp_path)
    index = tmp_path / "index"
    assert main(["retrieve", "index", "--data", str(images), "--out", str(index), "--embedder", "histogram"]) == 0
    metrics = tmp_path / "instance.json"
    command = ["retrieve", "evaluate", str(index), "--data", str(images), "--json", str(metrics)]
    assert main([*command, "--relevance", "group"]) == 0
    summary = json.loads(metrics.read_text())
    assert summary["relevance"].startswith("same group")
    # every query leaves out only its own file; the lone image has nothing to find and is not scored
    assert summary["excluded_per_query"] == 1.0 and summary["queries_without_relevant"] == 1
    assert summary["queries"] == 12 and summary["precision_at_1"] >= 0.9  # altered copies are each other's nearest
    assert summary["recall_at_10"] == pytest.approx(1.0)
    page = metrics.with_suffix(".html").read_text()
    assert "Queries answered worst and best" in page and "same group" in page
    # label relevance needs labels: a clear refusal, not a traceback
    assert main(["retrieve", "evaluate", str(index), "--data", str(images)]) == 2
    assert "needs a label" in capsys.readouterr().err


def test_index_trains_a_self_supervised_embedding_for_images_without_labels(br35h_root: Path, tmp_path, capsys):
    images = _unlabelled_copies(br35h_root, tmp_path, originals=6)
    index = tmp_path / "index"
    command = ["retrieve", "index", "--data", str(images), "--out", str(index), "--epochs", "2"]
    assert main([*command, "--image-size", "64", "--modality", "MR", "--base", "cls-shallow", "--quiet"]) == 0
    assert "trained retrieval-simclr" in capsys.readouterr().out
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["embedder"]["name"] == "self-supervised" and manifest["count"] == 19
    validation = json.loads((index / "model" / "validation.json").read_text())
    assert validation["epochs"] == 2 and 0.0 <= validation["best"]["view_top1"] <= 1.0
    metrics = tmp_path / "m.json"
    command = [
        "retrieve",
        "evaluate",
        str(index),
        "--data",
        str(images),
        "--relevance",
        "group",
        "--json",
        str(metrics),
    ]
    assert main(command) == 0
    summary = json.loads(metrics.read_text())
    assert summary["embedder"] == "self-supervised" and set(summary["baseline"]) == {"histogram", "phash"}
    assert "baseline_comparison" in summary
    # the index reloads its run to embed a query
    out = tmp_path / "q"
    assert main(["retrieve", "query", str(index), str(tmp_path / "case0_0.png"), "--out", str(out), "--k", "3"]) == 0
