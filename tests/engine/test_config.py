"""TrainConfig: YAML round trip and strict validation of what users write in config files."""

from __future__ import annotations

import pytest
import yaml

from medlearn.engine.config import TrainConfig
from medlearn.errors import MedlearnError


def test_yaml_round_trip_preserves_every_field():
    config = TrainConfig(
        epochs=7,
        batch_size=5,
        lr=3e-4,
        weight_decay=0.05,
        warmup_epochs=0.5,
        min_lr_ratio=0.1,
        grad_clip=None,
        early_stopping_patience=3,
        seed=11,
        max_minutes=2.5,
        channels_last=True,
        precision="bf16",
        compile=True,
        num_threads=2,
        eval_every=2,
    )
    text = yaml.safe_dump(config.to_dict())
    assert TrainConfig.from_dict(yaml.safe_load(text)) == config


def test_unknown_key_is_an_error_naming_the_key_and_file(tmp_path):
    with pytest.raises(MedlearnError) as caught:
        TrainConfig.from_dict({"epochs": 3, "learning_rate": 0.1}, source=tmp_path / "train.yaml")
    assert "learning_rate" in caught.value.problem
    assert "did you mean" in caught.value.problem
    assert caught.value.path == str(tmp_path / "train.yaml")


def test_yaml_scientific_strings_and_ints_become_floats():
    # PyYAML reads "1e-3" (no dot) as a string; users write it anyway.
    values = yaml.safe_load("lr: 1e-3\nweight_decay: 0\nmax_minutes: 30\n")
    config = TrainConfig.from_dict(values)
    assert config.lr == pytest.approx(1e-3)
    assert isinstance(config.weight_decay, float)
    assert config.max_minutes == 30.0


@pytest.mark.parametrize(
    "values",
    [
        {"epochs": 0},
        {"epochs": "ten"},
        {"lr": -1.0},
        {"lr": "fast"},
        {"precision": "fp16"},
        {"channels_last": "yes"},
        {"min_lr_ratio": 1.5},
        {"grad_clip": 0},
        {"early_stopping_patience": 0},
        {"eval_every": 0},
    ],
)
def test_invalid_values_raise_medlearn_error(values):
    with pytest.raises(MedlearnError) as caught:
        TrainConfig.from_dict(values)
    assert next(iter(values)) in caught.value.problem


def test_null_means_off_for_optional_settings():
    config = TrainConfig.from_dict({"grad_clip": None, "early_stopping_patience": None, "num_threads": None})
    assert config.grad_clip is None and config.early_stopping_patience is None and config.num_threads is None


def test_typo_gets_a_suggestion():
    with pytest.raises(MedlearnError, match="did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})
