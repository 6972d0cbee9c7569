from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.data import dedup
from medlearn.data.dedup import assign_groups, find_duplicate_groups
from medlearn.data.records import Sample
from medlearn.data.sources import samples_from_folder


def test_resized_recontrasted_and_exact_copies_join_the_original(planted, tmp_path: Path):
    samples = samples_from_folder(planted["root"])
    report = find_duplicate_groups(samples, cache_dir=tmp_path)
    index = {s.path: i for i, s in enumerate(samples)}
    family = {index[planted["original"]], *(index[c] for c in planted["copies"])}
    assert any(family <= set(group) for group in report.groups)
    # the distinct images stay apart: at most the planted family forms a group
    assert report.images_in_groups == len(family)
    assert [sorted(samples[i].path.name for i in g) for g in report.exact_groups] == [
        sorted([planted["original"].name, "copy_exact.jpg"])
    ]


def test_hashes_are_cached(planted, tmp_path: Path, monkeypatch):
    samples = samples_from_folder(planted["root"])
    first = find_duplicate_groups(samples, cache_dir=tmp_path)

    def fail(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(dedup, "_hash_image", fail)
    assert find_duplicate_groups(samples, cache_dir=tmp_path).groups == first.groups


def test_unreadable_files_are_listed_not_fatal(planted, tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    samples = [*samples_from_folder(planted["root"]), Sample(broken, "yes")]
    report = find_duplicate_groups(samples, cache_dir=tmp_path)
    assert [path for path, _ in report.unreadable] == [str(broken)]


def test_assign_groups_merges_patients_linked_by_a_duplicate(planted, tmp_path: Path):
    samples = samples_from_folder(planted["root"])
    patients = []
    for s in samples:
        if s.path == planted["original"]:
            patients.append(s.with_group("patient-A"))
        elif s.path == planted["copies"][0]:
            patients.append(s.with_group("patient-B"))
        elif s.path.name == planted["chosen"]["no"][0].name:
            patients.append(s.with_group("patient-A"))  # another image of patient A, no duplicate
        else:
            patients.append(s)
    grouped = {s.path: s.group for s in assign_groups(patients, cache_dir=tmp_path)}
    family = [planted["original"], *planted["copies"]]
    assert len({grouped[p] for p in family}) == 1
    # patient A's other image joins the merged group too: same patient
    assert grouped[planted["chosen"]["no"][0]] == grouped[planted["original"]]
    loners = [p for p in grouped if p not in family and p != planted["chosen"]["no"][0]]
    assert all(grouped[p] is None for p in loners)


@pytest.mark.slow
def test_br35h_exact_pair_and_near_duplicates(br35h_root):
    samples = samples_from_folder(br35h_root)
    report = find_duplicate_groups(samples)
    exact = [sorted(samples[i].path.name for i in g) for g in report.exact_groups]
    assert exact == [["no355.jpg", "no532.jpg"]]
    assert len(report.groups) > 300  # hundreds of near-duplicate groups
    assert all(len({samples[i].label for i in g}) == 1 for g in report.groups)  # never across classes


def test_sixteen_bit_images_are_rescaled_not_clipped(planted, tmp_path: Path):
    """16-bit pixels above 255 must not saturate: distinct 16-bit images stay apart, and a 16-bit
    copy of an 8-bit image still joins it."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "deep" / "x"
    folder.mkdir(parents=True)
    first, second = planted["chosen"]["no"][:2]
    for source in (first, second):
        with Image.open(source) as image:
            grey = np.asarray(image.convert("L"), dtype=np.uint16) * 16  # 12-bit range, as X-ray PNGs
        Image.fromarray(grey).save(folder / f"{source.stem}_16.png")
    (folder / first.name).write_bytes(first.read_bytes())
    samples = samples_from_folder(tmp_path / "deep")
    with Image.open(folder / f"{second.stem}_16.png") as stored:
        assert stored.mode.startswith("I") and np.asarray(stored).max() > 255  # really 16-bit pixels
    report = find_duplicate_groups(samples, cache_dir=tmp_path / "cache")
    grouped = [sorted(samples[i].path.name for i in g) for g in report.groups]
    assert grouped == [sorted([first.name, f"{first.stem}_16.png"])]
    assert report.exact_groups == []


def test_assign_groups_reuses_a_given_report(planted, tmp_path: Path, monkeypatch):
    samples = samples_from_folder(planted["root"])
    report = find_duplicate_groups(samples, cache_dir=tmp_path)
    monkeypatch.setattr(dedup, "find_duplicate_groups", lambda *a, **k: pytest.fail("hashed again"))
    grouped = assign_groups(samples, report=report)
    family = {planted["original"], *planted["copies"]}
    assert len({s.group for s in grouped if s.path in family}) == 1
    assert all(s.group is None for s in grouped if s.path not in family)
