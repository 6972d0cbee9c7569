from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from medlearn.data.records import Sample
from medlearn.data.splits import Split, kfold, random_split, split_samples, straddling_groups
from medlearn.errors import MedlearnError


def _samples(n_groups: int = 120) -> list[Sample]:
    """Groups of 1-4 images, label depending on the group, like patients with several slices."""
    samples = []
    for g in range(n_groups):
        for k in range(1 + g % 4):
            samples.append(Sample(Path(f"/data/g{g}_{k}.png"), "yes" if g % 3 == 0 else "no", f"g{g}"))
    return samples


@pytest.mark.parametrize("seed", range(5))
def test_no_group_straddles_and_classes_stay_balanced(seed):
    samples = _samples()
    split = split_samples(samples, val=0.15, test=0.15, seed=seed)
    assert straddling_groups(split) == []
    assert sum(split.sizes().values()) == len(samples)
    overall = sum(s.label == "yes" for s in samples) / len(samples)
    for part in (split.train, split.val, split.test):
        assert abs(sum(s.label == "yes" for s in part) / len(part) - overall) < 0.12
    assert 0.08 < len(split.test) / len(samples) < 0.25


def test_split_is_deterministic_and_seed_dependent():
    samples = _samples()
    a, b, c = (split_samples(samples, seed=s) for s in (1, 1, 2))
    assert a.test == b.test
    assert a.test != c.test


def test_random_split_leaks_groups():
    split = random_split(_samples(), seed=0)
    assert straddling_groups(split)  # the naive split puts one group's images on both sides


def test_kfold_covers_each_sample_once_without_straddling():
    samples = _samples()
    folds = kfold(samples, k=5, seed=0)
    tested = Counter(s.path for _, test in folds for s in test)
    assert set(tested.values()) == {1} and len(tested) == len(samples)
    for train, test in folds:
        assert not {s.group for s in train} & {s.group for s in test}


def test_split_csv_round_trip(tmp_path: Path):
    split = split_samples(_samples(), seed=0)
    path = split.to_csv(tmp_path / "split.csv")
    assert Split.from_csv(path) == split


def test_bad_fractions():
    with pytest.raises(MedlearnError):
        split_samples(_samples(), val=0.6, test=0.5)


@pytest.mark.slow
def test_br35h_grouped_split_has_no_straddlers_and_random_split_leaks(br35h_root):
    from medlearn.data.dedup import assign_groups
    from medlearn.data.sources import samples_from_folder

    grouped = assign_groups(samples_from_folder(br35h_root))
    split = split_samples(grouped, seed=0)
    assert straddling_groups(split) == []
    assert abs(sum(s.label == "yes" for s in split.test) / len(split.test) - 0.5) < 0.05
    naive = random_split(grouped, seed=0)
    train_groups = {s.group for s in naive.train if s.group}
    leaked = sum(s.group in train_groups for s in naive.test if s.group)
    assert leaked > len(naive.test) / 2  # Br35H is so duplicated that most naive test images leak


def test_make_split_keeps_near_duplicates_together_for_every_task(planted):
    """Labelled (classification, generation) and unlabelled (segmentation, enhancement) samples alike: the planted
    copies of one image never straddle train and validation."""
    from medlearn.data.sources import samples_from_folder
    from medlearn.data.splits import make_split

    samples = samples_from_folder(planted["root"])
    originals = {planted["original"], *planted["copies"]}
    for unlabelled in (False, True):
        chosen = [Sample(s.path, None if unlabelled else s.label, s.group) for s in samples]
        for seed in range(4):
            split = make_split(chosen, val=0.3, seed=seed)
            parts = {part for part in ("train", "val") for s in getattr(split, part) if s.path in originals}
            assert len(parts) == 1, (unlabelled, seed)
            assert not straddling_groups(split)


def test_holdout_keeps_one_case_for_training_with_two():
    from medlearn.data.splits import holdout_groups

    two = [Sample(Path(f"case{i}.nii.gz")) for i in range(2)]
    split = holdout_groups(two, 0.2, seed=0)
    assert len(split.train) == 1 and len(split.val) == 1
