from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from medlearn.cli.main import main
from medlearn.data.augment import build_augmentation, seed_augmentation


def test_audit_cli_reports_planted_duplicates_and_straddling(planted, tmp_path: Path, capsys):
    root = planted["root"]
    manifest = root / "with_split.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for label in ("no", "yes"):
            for i, image in enumerate(sorted((root / label).glob("*"))):
                part = "test" if image == planted["copies"][1] else "train" if i % 5 else "val"
                writer.writerow([f"{label}/{image.name}", label, part])
    out = tmp_path / "audit.json"
    assert main(["data", "audit", str(manifest), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["images"] == 35
    assert report["class_balance"] == {"no": 16, "yes": 19}
    assert report["duplicate_groups"] == 1 and report["images_in_duplicate_groups"] == 4
    assert len(report["exact_duplicates"]) == 1
    (straddling,) = report["straddling_duplicates"]
    assert any("copy_contrast.png (test)" in member for member in straddling)
    assert report["grouped_split_test_leaks"] == 0
    assert "near-duplicate groups" in capsys.readouterr().out


def test_augmentation_is_deterministic_under_a_seed():
    image = torch.rand(1, 64, 64)
    transform = build_augmentation("MR")
    outputs = []
    for seed in (3, 3, 4):
        seed_augmentation(transform, seed)
        outputs.append(torch.as_tensor(transform(image)))
    assert outputs[0].shape == image.shape
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])


def test_radiographs_are_never_flipped_left_right():
    image = torch.zeros(1, 128, 128)
    image[:, :, :24] = 1.0  # a bright band on the left (a laterality marker)
    transform = build_augmentation("CR")
    for seed in range(20):
        seed_augmentation(transform, seed)
        out = torch.as_tensor(transform(image))
        assert out[0, :, :32].mean() > out[0, :, -32:].mean() + 0.3


def test_volumes_are_never_flipped_head_to_foot():
    """In a volume the left-right axis is the first one (RAS i); the slice axis must keep its direction."""
    volume = torch.zeros(1, 32, 32, 32)
    volume[..., :10] = 1.0  # bright slab at the feet end
    transform = build_augmentation("MR", spatial_dims=3)
    for seed in range(12):
        seed_augmentation(transform, seed)
        out = torch.as_tensor(transform(volume))
        assert out.shape == volume.shape
        assert out[..., :16].mean() > out[..., 16:].mean() + 0.05
