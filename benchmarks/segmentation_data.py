"""The 2D nuclei segmentation split shared by medlearn's segmentation benchmark and its references.

The DSB2018 nuclei image in ``shared/data/nuclei-dsb2018`` (one 512x512 uint16 fluorescence image and
its instance labels) is cut into 16 disjoint 128x128 tiles (a 4x4 grid). A fixed seed-0 permutation
assigns 10 tiles to training, 2 to validation and 4 to testing. Each tile is written as a 16-bit PNG
image and an 8-bit PNG binary mask (0 background, 1 nucleus), with CSVs ``train.csv``, ``val.csv``,
``test.csv`` and ``trainval.csv`` (columns ``image,mask``, paths relative to the CSV's folder).

    python benchmarks/segmentation_data.py --workdir /tmp/nuclei   # prints the CSV paths as JSON

:func:`sparse_nuclei_split` makes the set that checks issue 12's failure on data no other experiment tuned
on: 64x64 tiles (an 8x8 grid), so the nuclei cover from a few to over 40% of a tile; training on the left
five columns of tiles, testing on the right three (a disjoint part of the image), and the same test tiles
with an intensity drift (``test_drift.csv``: x1.3 gain and +12 offset, as another exposure would give).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1] / "../shared/data"
TILE = 128
GRID = 4
SPLIT_SIZES = {"train": 10, "val": 2, "test": 4}
SEED = 0


def tile_name(row: int, col: int) -> str:
    return f"tile_{row:02d}_{col:02d}.png"


def split_assignment() -> dict[str, list[tuple[int, int]]]:
    """``{"train"|"val"|"test": [(row, col), ...]}`` from the fixed seed-0 permutation of the 16 tiles."""
    order = np.random.default_rng(SEED).permutation(GRID * GRID)
    tiles = [(int(i) // GRID, int(i) % GRID) for i in order]
    out, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        out[name] = sorted(tiles[start : start + size])
        start += size
    return out


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def nuclei_split(workdir: Path, shared_data: Path | None = None) -> dict[str, Path]:
    """Write the tiles and CSVs under ``workdir``; returns ``{"train"|"val"|"test"|"trainval": csv path}``."""
    workdir = Path(workdir)
    source = Path(shared_data if shared_data is not None else SHARED_DATA).resolve() / "nuclei-dsb2018"
    image = tifffile.imread(source / "img2d.tif")
    labels = tifffile.imread(source / "mask2d.tif")
    if image.shape != (GRID * TILE, GRID * TILE) or labels.shape != image.shape:
        raise ValueError(f"expected two {GRID * TILE}x{GRID * TILE} images, got {image.shape} and {labels.shape}")
    if image.dtype != np.uint16:
        raise ValueError(f"expected a uint16 image, got {image.dtype}")
    mask = (labels > 0).astype(np.uint8)

    rows: dict[str, list[tuple[str, str]]] = {}
    for split, tiles in split_assignment().items():
        rows[split] = []
        for row, col in tiles:
            window = np.s_[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
            name = tile_name(row, col)
            image_path, mask_path = workdir / "images" / name, workdir / "masks" / name
            image_tile = np.ascontiguousarray(image[window])
            _write_if_changed(image_path, _png_bytes(image_tile))
            _write_if_changed(mask_path, _png_bytes(np.ascontiguousarray(mask[window])))
            back = _read_png(image_path)
            if back.dtype != np.uint16 or not np.array_equal(back, image_tile):
                raise RuntimeError(f"{image_path} did not keep its uint16 pixels through a PNG round trip")
            rows[split].append((f"images/{name}", f"masks/{name}"))
    rows["trainval"] = rows["train"] + rows["val"]

    paths = {}
    for split, entries in rows.items():
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image", "mask"])
        writer.writerows(entries)
        path = workdir / f"{split}.csv"
        _write_if_changed(path, text.getvalue().encode())
        paths[split] = path
    return paths


def read_split(csv_path: Path) -> list[tuple[Path, Path]]:
    """``[(image, mask), ...]`` absolute paths from one of the CSVs."""
    csv_path = Path(csv_path)
    with csv_path.open(newline="") as f:
        return [(csv_path.parent / r["image"], csv_path.parent / r["mask"]) for r in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--shared-data", type=Path, default=None, help=f"default: {SHARED_DATA}")
    args = parser.parse_args(argv)
    paths = nuclei_split(args.workdir, args.shared_data)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))


if __name__ == "__main__":
    main()


SPARSE_TILE = 64
SPARSE_TRAIN_COLUMNS = 5
#: The drifted test set: a different gain and offset, as another exposure or camera setting gives.
DRIFT_GAIN, DRIFT_OFFSET = 1.3, 12.0


def sparse_nuclei_split(workdir: Path, shared_data: Path | None = None) -> dict[str, Path]:
    """64x64 tiles: train on columns 0-4, test on columns 5-7, and the test tiles again with an intensity drift.

    Returns ``{"train"|"test"|"test_drift": csv path}`` (columns ``image,mask``, paths relative to the CSV).
    """
    workdir = Path(workdir)
    source = Path(shared_data if shared_data is not None else SHARED_DATA).resolve() / "nuclei-dsb2018"
    image = tifffile.imread(source / "img2d.tif")
    mask = (tifffile.imread(source / "mask2d.tif") > 0).astype(np.uint8)
    grid = image.shape[0] // SPARSE_TILE
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": [], "test_drift": []}
    for row in range(grid):
        for col in range(grid):
            window = np.s_[row * SPARSE_TILE : (row + 1) * SPARSE_TILE, col * SPARSE_TILE : (col + 1) * SPARSE_TILE]
            name = f"tile_{row}_{col}.png"
            tile = np.ascontiguousarray(image[window])
            _write_if_changed(workdir / "images" / name, _png_bytes(tile))
            _write_if_changed(workdir / "masks" / name, _png_bytes(np.ascontiguousarray(mask[window])))
            if col < SPARSE_TRAIN_COLUMNS:
                rows["train"].append((f"images/{name}", f"masks/{name}"))
                continue
            rows["test"].append((f"images/{name}", f"masks/{name}"))
            drifted = np.clip(np.rint(tile * DRIFT_GAIN + DRIFT_OFFSET), 0, 65535).astype(np.uint16)
            _write_if_changed(workdir / "drift" / name, _png_bytes(drifted))
            rows["test_drift"].append((f"drift/{name}", f"masks/{name}"))
    paths = {}
    for split, entries in rows.items():
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image", "mask"])
        writer.writerows(entries)
        paths[split] = workdir / f"{split}.csv"
        _write_if_changed(paths[split], text.getvalue().encode())
    return paths
