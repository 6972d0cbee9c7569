"""A small classifier run and an exported nuclei segmentation network, trained once for the service's tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medlearn.cli.main import main

TILE = 64


@pytest.fixture(scope="session")
def runs(br35h_root: Path, shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve")
    rows = [(str(p), label) for label in ("no", "yes") for p in sorted((br35h_root / label).glob("*.jpg"))[:16]]
    with open(folder / "cls.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), *rows])
    command = ["classify", "train", "--data", str(folder / "cls.csv"), "--out", str(folder / "cls"), "--quiet"]
    assert main([*command, "--model", "cls-shallow", "--epochs", "1", "--image-size", "64", "--modality", "MR"]) == 0
    image = tifffile.imread(shared_data / "nuclei-dsb2018/img2d.tif")
    mask = (tifffile.imread(shared_data / "nuclei-dsb2018/mask2d.tif") > 0).astype(np.uint8)
    pairs = []
    for number, (r, c) in enumerate([(0, 0), (64, 0), (128, 0), (192, 0), (0, 192), (64, 192)]):
        for sub, array in (("images", image), ("masks", mask)):
            (folder / sub).mkdir(exist_ok=True)
            Image.fromarray(array[r : r + TILE, c : c + TILE]).save(folder / sub / f"t{number}.png")
        pairs.append((str(folder / "images" / f"t{number}.png"), str(folder / "masks" / f"t{number}.png")))
    with open(folder / "seg.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("image", "mask"), *pairs])
    flags = ["--epochs", "2", "--batches-per-epoch", "4", "--set", "patch_size=[64,64]", "--set", "batch_size=4"]
    command = ["segment", "train", "--data", str(folder / "seg.csv"), "--out", str(folder / "seg"), "--quiet"]
    assert main([*command, *flags, "--set", "depth=3"]) == 0
    assert main(["export", str(folder / "seg"), "--out", str(folder / "nuclei.onnx")]) == 0
    return {"cls": folder / "cls", "onnx": folder / "nuclei.onnx", "folder": folder, "jpg": Path(rows[-1][0]),
            "png": folder / "images" / "t5.png"}  # fmt: skip
