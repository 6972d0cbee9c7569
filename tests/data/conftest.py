"""A small real dataset with planted near-duplicates, built from Br35H images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

PER_CLASS = 16


@pytest.fixture(scope="module")
def planted(br35h_root: Path, tmp_path_factory) -> dict:
    """Class folders with distinct images plus, for one image, a resized and a re-contrasted copy and an exact copy."""
    root = tmp_path_factory.mktemp("planted")
    chosen = {}
    for label in ("no", "yes"):
        (root / label).mkdir()
        # every 40th file: far apart in Br35H's numbering, so unlikely to be near-duplicates of each other
        files = sorted((br35h_root / label).glob("*.jpg"))[::40][:PER_CLASS]
        for file in files:
            (root / label / file.name).write_bytes(file.read_bytes())
        chosen[label] = [root / label / f.name for f in files]
    original = chosen["yes"][0]
    with Image.open(original) as image:
        grey = image.convert("L")
        grey.resize((grey.width * 3 // 2, grey.height * 3 // 2), Image.BICUBIC).save(root / "yes" / "copy_resized.png")
        ImageEnhance.Contrast(grey).enhance(1.3).save(root / "yes" / "copy_contrast.png")
    (root / "yes" / "copy_exact.jpg").write_bytes(original.read_bytes())
    copies = [root / "yes" / n for n in ("copy_resized.png", "copy_contrast.png", "copy_exact.jpg")]
    return {"root": root, "original": original, "copies": copies, "chosen": chosen}
