"""Settings from config files and flags: a misspelt key or a value of the wrong type is a one-line error."""

from __future__ import annotations

import pytest

from medlearn.apps.classification.settings import ClassifierSettings
from medlearn.apps.segmentation.settings import SegmenterSettings
from medlearn.errors import MedlearnError


def test_yaml_and_json_values_are_accepted_as_the_settings_want_them():
    settings = ClassifierSettings.from_dict({"image_size": 96.0, "val_fraction": "0.2", "modality": "MR"})
    assert settings.image_size == 96 and settings.val_fraction == 0.2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image_size": "big"}, "classification setting image_size must be a whole number"),
        ({"augment": "yes"}, "classification setting augment must be true or false"),
        ({"val_fraction": [0.2]}, "classification setting val_fraction must be a number"),
        ({"model": 3}, "classification setting model must be text"),
        ({"imagesize": 96}, "unknown classification settings: imagesize"),
    ],
)
def test_wrong_types_and_unknown_keys_name_the_setting(values, message):
    with pytest.raises(MedlearnError, match=message):
        ClassifierSettings.from_dict(values)


def test_nested_settings_pass_through_to_their_own_checks():
    settings = SegmenterSettings.from_dict({"plan_overrides": {"batch_size": 4}, "batches_per_epoch": 10})
    assert settings.plan_overrides == {"batch_size": 4}
    with pytest.raises(MedlearnError, match="plan_overrides must be a mapping"):
        SegmenterSettings.from_dict({"plan_overrides": [4]})
