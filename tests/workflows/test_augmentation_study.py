"""The label-scarce augmentation study (gen-augment, pretrain-ae) on real Br35H images, and its autoencoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medlearn.apps.classification.arrays import train_classifier_on_arrays
from medlearn.apps.studies import augmentation as study
from medlearn.apps.studies.augmentation import StudySettings, evaluate_target, run_study
from medlearn.apps.studies.reconstruction import DenoisingReconstructionTask
from medlearn.data.label_subsets import nested_label_subsets
from medlearn.errors import MedlearnError
from medlearn.evaluation.seed_statistics import mean_interval, verdict
from medlearn.models import create_model
from medlearn.models.autoencoder import (
    build_autoencoder,
    feature_trunk,
    pretrained_classifier,
    state_digest,
    trunk_state,
)

PER_CLASS = 60
SIZE = 32


class NoisyCopiesSynthesizerTestDouble:
    """TEST DOUBLE standing in for the conditional GAN: noisy copies of random training images of each class.

    Records what it was fitted on and what was asked of its sampler, and what it returned.
    """

    def __init__(self) -> None:
        self.fits: list[dict] = []

    def __call__(self, train_images: np.ndarray, train_labels: np.ndarray, seed: int, work_dir: Path):
        record = {"images": train_images.copy(), "labels": train_labels.copy(), "seed": seed, "work_dir": work_dir}
        self.fits.append(record)
        rng = np.random.default_rng(seed)

        def sample(counts: dict[int, int]) -> np.ndarray:
            record["counts"] = dict(counts)
            parts = []
            for label, count in counts.items():
                pool = train_images[train_labels == label]
                picked = pool[rng.integers(0, len(pool), count)]
                parts.append(picked + rng.normal(0, 0.1, picked.shape))
            record["returned"] = np.concatenate(parts).astype(np.float32)
            return record["returned"]

        return sample


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny 32-px models run as fast on one thread, and stay fast when other processes share the 2 cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def manifest(br35h_root: Path, tmp_path_factory) -> Path:
    """120 real Br35H images (60 per class) listed in a CSV manifest with absolute paths."""
    path = tmp_path_factory.mktemp("study_data") / "br35h_small.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for label in ("no", "yes"):
            for file in sorted((br35h_root / label).glob("*.jpg"))[:PER_CLASS]:
                writer.writerow([str(file), label])
    return path


def _settings(manifest: Path, **changes) -> StudySettings:
    values = dict(
        data=str(manifest),
        fractions=(0.25, 1.0),
        seeds=1,
        image_size=SIZE,
        epochs=1,
        min_steps=0,
        pretrain_epochs=1,
        batch_size=16,
        precision="fp32",
        num_threads=1,
    )
    return StudySettings(**{**values, **changes})


@pytest.fixture(scope="module")
def tiny_study(manifest: Path, tmp_path_factory):
    """The study run once (4 arms x fractions 0.25, 1.0 x 1 seed, 1 epoch each), spying on what each arm trained on."""
    out = tmp_path_factory.mktemp("study") / "out"
    synthesizer = NoisyCopiesSynthesizerTestDouble()
    trained_on: dict[tuple[str, float], dict] = {}

    def spy(images, labels, *args, **kwargs):
        run_dir = Path(args[5])
        arm, fraction = run_dir.parent.name, float(run_dir.name.split("-")[0][1:])
        trained_on[(arm, fraction)] = {"images": images.copy(), "labels": labels.copy(), **kwargs}
        return train_classifier_on_arrays(images, labels, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study, "train_classifier_on_arrays", spy)  # where the study looks it up
        result = run_study(_settings(manifest), out, synthesizer)
    return {"result": result, "out": out, "synthesizer": synthesizer, "trained_on": trained_on}


# -- autoencoder -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_images(manifest: Path) -> torch.Tensor:
    from medlearn.data.preload import preload
    from medlearn.data.preprocess import ClassificationPreprocessing
    from medlearn.data.sources import load_samples

    samples = load_samples(manifest)
    chosen = samples[:16] + samples[-16:]
    loaded = preload(chosen, ClassificationPreprocessing(image_size=SIZE, modality="MR"), show_progress=False)
    return torch.from_numpy(loaded.arrays.astype(np.float32))


@pytest.mark.parametrize("name", ["cls-multires", "resnet10"])
def test_autoencoder_on_a_classifier_trunk_reconstructs_and_learns(name: str, real_images: torch.Tensor):
    torch.manual_seed(0)
    classifier = create_model(name, in_channels=1, num_classes=2)
    autoencoder = build_autoencoder(classifier, in_channels=1, image_size=SIZE)
    # the encoder is a view: the classifier's own parameters, under the classifier's own names
    classifier_params = dict(classifier.named_parameters())
    for key, param in autoencoder.encoder.named_parameters():
        assert param is classifier_params[key]
    assert autoencoder(real_images[:4]).shape == real_images[:4].shape

    task = DenoisingReconstructionTask(noise_std=0.3, mask_fraction=0.25)
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        result = task.training_step(autoencoder, real_images)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(float(result.loss.detach()))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_pretrained_classifier_starts_from_the_encoder_weights():
    torch.manual_seed(1)
    pretrained = build_autoencoder(create_model("cls-multires", in_channels=1, num_classes=2), 1, SIZE)
    with torch.no_grad():
        for param in pretrained.encoder.parameters():
            param.add_(torch.randn_like(param))  # make the encoder unlike any fresh initialisation
    fresh = pretrained_classifier("cls-multires", pretrained, in_channels=1, num_classes=2)
    expected = trunk_state(pretrained)
    got = trunk_state(fresh)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    assert state_digest(got) == state_digest(expected)


def test_unsupported_classifier_is_refused_clearly():
    with pytest.raises(MedlearnError, match="no feature trunk"):
        feature_trunk(create_model("cls-synergic", in_channels=1, num_classes=2))


def test_validation_corruption_is_repeatable():
    task = DenoisingReconstructionTask(noise_std=0.2, mask_fraction=0.1)
    images = torch.randn(3, 1, 8, 8)
    identity = torch.nn.Identity()
    first = task.validation_metrics([task.validation_step(identity, images)])
    second = task.validation_metrics([task.validation_step(identity, images)])
    assert first == second and first["loss"] > 0


# -- subsets and statistics (no training) ----------------------------------------------------------


def test_subsets_take_whole_groups_per_class_and_are_nested():
    rng = np.random.default_rng(3)
    groups, labels = [], []
    for g in range(150):
        size = int(rng.choice([1, 1, 1, 2, 3, 6]))
        groups += [f"g{g}"] * size
        labels += [g % 3 == 0] * size  # an imbalanced two-class set
    labels = np.array(labels, dtype=np.int64)
    fractions = (0.05, 0.1, 0.25, 1.0)
    subsets = {seed: nested_label_subsets(groups, labels, fractions, seed) for seed in (0, 1)}
    for per_fraction in subsets.values():
        assert np.array_equal(per_fraction[1.0], np.arange(len(labels)))
        for small, large in zip(fractions, fractions[1:], strict=False):
            assert set(per_fraction[small]) <= set(per_fraction[large])
        for fraction, index in per_fraction.items():
            chosen_groups = {groups[i] for i in index}
            assert sorted(index) == sorted(i for i, g in enumerate(groups) if g in chosen_groups)
            for k in (0, 1):
                share = (labels[index] == k).sum() / (labels == k).sum()
                assert abs(share - fraction) < 0.03 or fraction == 1.0
    assert not np.array_equal(subsets[0][0.1], subsets[1][0.1])


def test_t_interval_and_verdicts():
    stats = mean_interval([0.9, 0.92, 0.94], confidence=0.95)
    assert stats["mean"] == pytest.approx(0.92)
    assert stats["high"] - stats["mean"] == pytest.approx(4.302653 * 0.02 / np.sqrt(3), rel=1e-5)
    assert mean_interval([0.5])["low"] is None
    assert verdict({"low": 0.01, "high": 0.05}) == "helped"
    assert verdict({"low": -0.05, "high": -0.01}) == "hurt"
    assert verdict({"low": -0.01, "high": 0.05}) == "no significant difference"
    assert verdict({"low": None, "high": None}).startswith("undetermined")


@pytest.mark.parametrize(
    ("diffs", "status"),
    [([0.03, 0.035, 0.04], "met"), ([0.0, 0.005, -0.005], "not met"), ([-0.02, 0.05, 0.03], "inconclusive")],
)
def test_target_status_follows_the_interval(diffs, status):
    settings = StudySettings(fractions=(0.1,), seeds=3)
    comparison = {"arm": "gan", "fraction": 0.1, "accuracy_difference": mean_interval(diffs)}
    target = evaluate_target([comparison], settings)
    assert target["status"] == status
    assert "2 points" in target["statement"] or "+2 points" in target["statement"]


# -- the study end to end --------------------------------------------------------------------------


def test_study_writes_strict_json_csv_and_report(tiny_study):
    out = tiny_study["out"]

    def refuse(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    document = json.loads((out / "study.json").read_text(), parse_constant=refuse)
    assert {"settings", "data", "method", "summary", "comparisons", "target", "pretraining", "runs"} <= set(document)
    assert len(document["runs"]) == 8
    cells = {(e["arm"], e["fraction"]) for e in document["summary"]}
    assert cells == {(a, f) for a in ("classic", "gan", "pretrain-ae", "non-deep") for f in (0.25, 1.0)}
    for entry in document["summary"]:
        for metric in ("accuracy", "sensitivity", "specificity"):
            assert set(entry[metric]) >= {"mean", "low", "high", "values"}
            assert 0 <= entry[metric]["mean"] <= 1
    assert {(c["arm"], c["fraction"]) for c in document["comparisons"]} == {
        (a, f) for a in ("gan", "pretrain-ae", "non-deep") for f in (0.25, 1.0)
    }
    assert all(c["verdict"].startswith("undetermined") for c in document["comparisons"])  # one seed
    assert document["target"]["status"] == "not evaluated"  # no 10% fraction in this run
    assert document["data"]["n_test"] + document["data"]["n_train"] == 2 * PER_CLASS
    with open(out / "runs.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    html = (out / "report.html").read_text()
    assert "Label-scarce augmentation study" in html and html.count("data:image/png;base64,") == 2


def test_gan_arm_trained_on_the_labelled_subset_plus_the_requested_synthetic_images(tiny_study):
    fits = tiny_study["synthesizer"].fits
    trained_on = tiny_study["trained_on"]
    rows = {(r["arm"], r["fraction"]): r for r in tiny_study["result"].runs}
    assert [fit["images"].shape[0] for fit in fits] == [rows[("gan", f)]["n_labelled"] for f in (0.25, 1.0)]
    for fit, fraction in zip(fits, (0.25, 1.0), strict=True):
        classic = trained_on[("classic", fraction)]
        gan = trained_on[("gan", fraction)]
        # fitted on exactly the classic arm's labelled images, asked for as many per class as real ones
        assert np.array_equal(fit["images"], classic["images"]) and np.array_equal(fit["labels"], classic["labels"])
        assert fit["counts"] == {k: int((classic["labels"] == k).sum()) for k in (0, 1)}
        n_real = len(classic["labels"])
        assert np.array_equal(gan["images"][:n_real], classic["images"])
        assert np.array_equal(gan["images"][n_real:], fit["returned"])
        assert list(gan["labels"][n_real:]) == [k for k, n in fit["counts"].items() for _ in range(n)]
        assert rows[("gan", fraction)]["n_synthetic"] == len(fit["returned"])
        assert rows[("gan", fraction)]["n_train"] == n_real + len(fit["returned"])
        assert fit["work_dir"].is_dir()


def test_fractions_subsample_whole_groups_per_class_nested(tiny_study):
    out = tiny_study["out"]
    with open(out / "split.csv", newline="") as handle:
        train = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    subsets = json.loads((out / "subsets.json").read_text())["subsets"]["0"]
    quarter, everything = set(subsets["0.25"]), set(subsets["1"])
    assert everything == set(range(len(train))) and quarter < everything
    groups_in_quarter = {train[i]["group"] or train[i]["path"] for i in quarter}
    assert quarter == {i for i, row in enumerate(train) if (row["group"] or row["path"]) in groups_in_quarter}
    for label in ("no", "yes"):
        total = sum(1 for row in train if row["label"] == label)
        taken = sum(1 for i in quarter if train[i]["label"] == label)
        assert abs(taken - 0.25 * total) <= 2
    assert any(row["group"].startswith("dup:") for row in train)  # real near-duplicate groups were present
    rows = {(r["arm"], r["fraction"]): r for r in tiny_study["result"].runs}
    assert rows[("classic", 0.25)]["n_labelled"] == len(quarter)


def test_pretrain_arm_starts_from_the_pretrained_encoder(tiny_study):
    out = tiny_study["out"]
    encoder = load_file(str(out / "pretrain" / "seed0" / "encoder.safetensors"))
    digest = state_digest(encoder)
    rows = {(r["arm"], r["fraction"]): r for r in tiny_study["result"].runs}
    for fraction in (0.25, 1.0):
        assert rows[("pretrain-ae", fraction)]["init"] == f"dae:{digest}"  # measured on the model before training
        # classic and gan share one random initialisation per seed (paired), which pre-training replaced
        assert rows[("classic", fraction)]["init"] == rows[("gan", fraction)]["init"] != f"random:{digest}"
        assert tiny_study["trained_on"][("pretrain-ae", fraction)]["init_state"] is not None
    fine_tuned_start = pretrained_classifier("cls-multires", encoder, in_channels=1, num_classes=2)
    assert state_digest(trunk_state(fine_tuned_start)) == digest
    record = json.loads((out / "pretrain" / "seed0" / "pretrain.json").read_text())
    assert record["digest"] == digest and record["images"] == tiny_study["result"].document["data"]["n_train"]


def test_rerun_skips_finished_rows_and_redoes_only_missing_ones(tiny_study, manifest: Path):
    out = tiny_study["out"]
    before = (out / "runs.csv").read_text()
    synthesizer = NoisyCopiesSynthesizerTestDouble()
    again = run_study(_settings(manifest), out, synthesizer)
    assert again.trained == [] and len(again.skipped) == 8 and synthesizer.fits == []
    assert (out / "runs.csv").read_text() == before

    lines = before.splitlines()
    kept = [line for line in lines if not line.startswith("gan,1.0,")]
    assert len(kept) == len(lines) - 1
    (out / "runs.csv").write_text("\n".join(kept) + "\n")
    resumed = run_study(_settings(manifest), out, synthesizer)
    assert resumed.trained == [("gan", 1.0, 0)] and len(synthesizer.fits) == 1
    assert len(resumed.runs) == 8


def test_a_study_folder_refuses_other_settings(tiny_study, manifest: Path):
    with pytest.raises(MedlearnError, match="image_size"):
        run_study(_settings(manifest, image_size=48), tiny_study["out"], NoisyCopiesSynthesizerTestDouble())


def test_gan_arm_needs_a_synthesizer(manifest: Path, tmp_path: Path):
    with pytest.raises(MedlearnError, match="synthesizer"):
        run_study(_settings(manifest), tmp_path / "out", None)


def test_the_non_deep_arm_fits_the_classical_baseline_on_the_same_labelled_subset(tiny_study):
    rows = tiny_study["result"].runs
    non_deep = {row["fraction"]: row for row in rows if row["arm"] == "non-deep"}
    classic = {row["fraction"]: row for row in rows if row["arm"] == "classic"}
    assert set(non_deep) == set(classic)
    for fraction, row in non_deep.items():
        assert row["epochs"] == 0 and row["init"] == "logistic-histogram-texture"
        assert row["n_labelled"] == classic[fraction]["n_labelled"]  # the same subset as the CNN arms
        assert row["labelled_per_class"] == classic[fraction]["labelled_per_class"]
        assert 0.0 <= row["accuracy"] <= 1.0
    document = json.loads((tiny_study["out"] / "study.json").read_text())
    assert any(entry["arm"] == "non-deep" for entry in document["comparisons"])
