"""Synthetic lesions in real backgrounds: exact masks, controlled size and contrast, marked as hybrid."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medlearn.data.hybrid import LesionSpec, insert_lesion
from medlearn.errors import MedlearnError


@pytest.fixture(scope="module")
def brain(shared_data):
    from medlearn.io import load

    return load(shared_data / "pyradiomics/brain1_image.nrrd")


def test_lesion_has_the_asked_size_and_contrast(brain):
    rng = np.random.default_rng(0)
    spec = LesionSpec(radius_mm=8.0, contrast=3.0, shape="ellipsoid", texture=0.0, blur_mm=0.1)
    image, mask = insert_lesion(brain, spec, rng)
    voxel_mm3 = float(np.prod(brain.spacing))
    sphere_mm3 = 4 / 3 * np.pi * 8.0**3
    # random axis ratios 0.8-1.2 and 6.5 mm slices: the volume is within a factor of two of the sphere
    assert 0.4 * sphere_mm3 < mask.sum() * voxel_mm3 < 2.0 * sphere_mm3
    difference = image.array[0] - brain.array[0]
    assert np.all(difference[~mask] < difference[mask].mean())  # the change is where the mask says
    body = brain.array[0] > np.percentile(brain.array[0], 20)
    assert difference[mask].mean() == pytest.approx(3.0 * brain.array[0][body].std(), rel=0.35)
    assert image.tags["hybrid"] is True and image.spacing == brain.spacing


def test_same_seed_same_lesion_and_irregular_shapes_differ(brain):
    spec = LesionSpec(radius_mm=6.0)
    a = insert_lesion(brain, spec, np.random.default_rng(1))[1]
    b = insert_lesion(brain, spec, np.random.default_rng(1))[1]
    c = insert_lesion(brain, spec, np.random.default_rng(2))[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_2d_background_and_bad_specs(br35h_root):
    from medlearn.io import load, to_grey

    slice_2d = to_grey(load(sorted((br35h_root / "no").glob("*.jpg"))[0]))
    image, mask = insert_lesion(slice_2d, LesionSpec(radius_mm=10, contrast=-2.0), np.random.default_rng(0))
    assert mask.shape == slice_2d.spatial_shape and mask.any()
    assert (image.array[0] - slice_2d.array[0].astype(np.float32))[mask].mean() < 0  # darker lesion
    with pytest.raises(MedlearnError):
        LesionSpec(radius_mm=-1)
    with pytest.raises(MedlearnError, match="no room"):
        insert_lesion(slice_2d, LesionSpec(radius_mm=500), np.random.default_rng(0))


# --- hybrid sets for detection: several lesions per image, negative images, exact centres ---------------------


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _to_voxel(point: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World mm -> voxel index for ``len(point)`` axes (a 2D image's x, y come from i, j alone)."""
    d = len(point)
    return np.linalg.solve(affine[:d, :d], point - affine[:d, 3])


def _check_lesions_against_points(folder, row: dict[str, str], lesions: list[dict[str, str]], axes: str) -> int:
    """The mask's components are the image's lesions, clear of each other; every point lies inside its lesion, at
    the centroid (world mm through the image's own affine). Returns the number of lesions."""
    from medlearn.io import load

    image = load(folder / row["image"])
    mask = load(folder / row["image"].replace("images/", "masks/")).array[0]
    assert set(np.unique(mask)) <= {0, 1}  # still the binary mask segmentation reads
    cube = np.ones((3,) * mask.ndim, dtype=bool)
    components, count = ndimage.label(mask > 0, structure=cube)
    mine = [lesion for lesion in lesions if lesion["case"] == Path(row["image"]).name]
    points = _rows(folder / row["annotation"])
    with open(folder / row["annotation"], encoding="utf-8") as handle:
        assert handle.readline().strip() == f"{','.join(axes)},radius_mm,label"
    assert count == len(mine) == len(points)
    assert [int(lesion["lesion"]) for lesion in mine] == list(range(count))
    for number in range(1, count + 1):  # at least 2 clear voxels between two lesions, along every axis
        grown = ndimage.binary_dilation(components == number, structure=cube, iterations=2)
        assert not (grown & (components > 0) & (components != number)).any()
    hit = set()
    for point, lesion in zip(points, mine, strict=True):
        world = np.array([float(point[axis]) for axis in axes])
        assert world == pytest.approx([float(lesion[axis]) for axis in axes])
        assert point["label"] == "lesion" and float(point["radius_mm"]) == float(lesion["radius_mm"])
        voxel = _to_voxel(world, image.affine)
        number = components[tuple(np.round(voxel).astype(int))]
        assert number > 0  # inside a lesion...
        centroid = np.r_[ndimage.center_of_mass(components == number), np.zeros(3 - mask.ndim), 1.0]
        assert world == pytest.approx((image.affine @ centroid)[: len(axes)], abs=1e-3)  # ...at its centroid
        assert int(lesion["voxels"]) == int((components == number).sum())
        hit.add(number)
    assert len(hit) == count  # one point per lesion
    return count


def test_hybrid_set_with_several_lesions_and_negative_images(br35h_root, tmp_path):
    from medlearn.data.hybrid_set import HybridSetSpec, make_hybrid_set
    from medlearn.io import load

    backgrounds = sorted((br35h_root / "no").glob("*.jpg"))[:12]
    spec = HybridSetSpec(count=8, seed=1, lesions_per_image=(0, 3))
    pairs_csv = make_hybrid_set(backgrounds, tmp_path, spec)
    pairs, detection, lesions = (_rows(tmp_path / n) for n in ("pairs.csv", "detection.csv", "lesions.csv"))
    assert len(pairs) == len(detection) == 8 and pairs_csv == tmp_path / "pairs.csv"
    assert [(p["image"], p["group"]) for p in pairs] == [(d["image"], d["group"]) for d in detection]
    assert [d["annotation"] for d in detection] == [f"points/hybrid_{n:04d}.csv" for n in range(8)]
    assert list(lesions[0]) == ["case", "background", "radius_mm", "contrast_sd", "shape", "voxels", "lesion", "x", "y"]
    counts = [_check_lesions_against_points(tmp_path, row, lesions, "xy") for row in detection]
    assert 0 in counts and max(counts) >= 2 and sum(counts) == len(lesions)  # this seed gives both kinds
    # the radius x contrast levels are cycled lesion by lesion over the whole set, as with one lesion per image
    levels = [(r, c) for r in spec.radii_mm for c in spec.contrasts]
    assert [(float(x["radius_mm"]), float(x["contrast_sd"])) for x in lesions] == [
        levels[n % len(levels)] for n in range(len(lesions))
    ]
    for row, count in zip(detection, counts, strict=True):
        if count == 0:  # a negative image: empty mask, header-only points, nowhere in lesions.csv, still hybrid
            image = load(tmp_path / row["image"])
            assert not load(tmp_path / row["image"].replace("images/", "masks/")).array.any()
            assert (tmp_path / row["annotation"]).read_text().splitlines() == ["x,y,radius_mm,label"]
            assert Path(row["image"]).name not in {x["case"] for x in lesions}
            assert image.tags["hybrid"] is True


def test_one_lesion_per_image_is_the_set_it_always_was(br35h_root, tmp_path):
    """The default draws exactly the random numbers of the one-lesion sets: same seed, same images and masks."""
    from medlearn.data.hybrid_set import HybridSetSpec, make_hybrid_set
    from medlearn.io import load, to_grey

    backgrounds = sorted((br35h_root / "no").glob("*.jpg"))[:5]
    make_hybrid_set(backgrounds, tmp_path, HybridSetSpec(count=2, seed=4))
    rng = np.random.default_rng(4)
    order = rng.permutation(len(backgrounds))
    lesions = _rows(tmp_path / "lesions.csv")
    for index, radius in enumerate((2.0, 2.0)):
        background = to_grey(load(backgrounds[order[index]]))
        expected, mask = insert_lesion(background, LesionSpec(radius_mm=radius, contrast=1.0 + index), rng)
        name = f"hybrid_{index:04d}.nii.gz"
        assert np.array_equal(load(tmp_path / "images" / name).array, expected.array)
        assert np.array_equal(load(tmp_path / "masks" / name).array[0], mask.astype(np.uint8))
        assert lesions[index]["case"] == name and lesions[index]["lesion"] == "0"


def test_3d_background_gets_world_x_y_z_points(shared_data, tmp_path):
    from medlearn.data.hybrid_set import HybridSetSpec, make_hybrid_set

    spec = HybridSetSpec(count=2, radii_mm=(4.0, 8.0), contrasts=(2.0,), seed=0, lesions_per_image=(2, 2))
    make_hybrid_set([shared_data / "pyradiomics/brain1_image.nrrd"], tmp_path, spec)
    lesions = _rows(tmp_path / "lesions.csv")
    assert list(lesions[0])[-3:] == ["x", "y", "z"] and len(lesions) == 4
    for row in _rows(tmp_path / "detection.csv"):
        assert _check_lesions_against_points(tmp_path, row, lesions, "xyz") == 2


def test_lesions_in_one_image_keep_apart_or_the_image_is_reported_full(br35h_root):
    from medlearn.data.hybrid import GAP_VOXELS, insert_lesions
    from medlearn.io import load, to_grey
    from medlearn.io.geometry import image_from_affine

    slice_2d = to_grey(load(sorted((br35h_root / "no").glob("*.jpg"))[0]))
    specs = [LesionSpec(radius_mm=6.0, contrast=2.0), LesionSpec(radius_mm=3.0, contrast=-1.0)] * 2
    image, masks = insert_lesions(slice_2d, specs, np.random.default_rng(3))
    assert len(masks) == 4 and image.tags["hybrid"] is True
    distance_to_first = ndimage.distance_transform_edt(~masks[0], sampling=slice_2d.spacing)
    assert all(distance_to_first[mask].min() > 6.0 for mask in masks[1:])  # the larger radius between them
    cube = np.ones((3, 3), dtype=bool)
    near = ndimage.binary_dilation(masks[1], structure=cube, iterations=GAP_VOXELS)
    assert not (near & (masks[0] | masks[2] | masks[3])).any()
    # avoid= on the one-lesion function does the same
    _, single = insert_lesion(slice_2d, LesionSpec(radius_mm=4.0), np.random.default_rng(0), avoid=masks[0])
    assert ndimage.distance_transform_edt(~masks[0], sampling=slice_2d.spacing)[single].min() > 4.0
    with pytest.raises(MedlearnError, match="no room .* from the lesions already placed"):  # no centre is far enough
        insert_lesions(slice_2d, [LesionSpec(radius_mm=120.0)] * 3, np.random.default_rng(0))
    crop = image_from_affine(slice_2d.array[:, 250:370, 250:370].astype(np.float32), slice_2d.affine)
    with pytest.raises(MedlearnError, match=r"no room .*\(50 tries\)"):  # centres far enough, lesions too big
        insert_lesions(crop, [LesionSpec(radius_mm=10.0)] * 20, np.random.default_rng(0))
    unchanged, none = insert_lesions(slice_2d, [], np.random.default_rng(0))
    assert none == [] and np.array_equal(unchanged.array[0], slice_2d.array[0].astype(np.float32))
    assert unchanged.tags["hybrid"] is True  # a negative image must not be told apart by its header


def test_lesions_per_image_ranges():
    from medlearn.data.hybrid_set import HybridSetSpec, parse_lesions_per_image

    assert parse_lesions_per_image("1") == (1, 1)
    assert parse_lesions_per_image("0-3") == (0, 3)
    assert parse_lesions_per_image("2-2") == (2, 2)
    with pytest.raises(MedlearnError, match="backwards"):
        parse_lesions_per_image("3-1")
    for bad in ("a-b", "", "-1", "1-2-3", "1.5", "1,3"):
        with pytest.raises(MedlearnError, match="count or a range"):
            parse_lesions_per_image(bad)
    for bad in ((2, 1), (-1, 2), (1,), (0.5, 1)):
        with pytest.raises(MedlearnError, match="lesions per image"):
            HybridSetSpec(lesions_per_image=bad)


def test_cli_lesions_per_image(br35h_root, tmp_path):
    """`data hybrid --lesions-per-image 0-3` writes the detection files; a bad range is a clear error."""
    import typer
    from typer.testing import CliRunner

    from medlearn.cli import data_cmd

    app = typer.Typer()
    data_cmd.register(app)
    runner = CliRunner()
    args = ["data", "hybrid", str(br35h_root / "no"), "--count", "3", "--radii", "3"]
    done = runner.invoke(app, [*args, "--out", str(tmp_path / "set"), "--lesions-per-image", "0-3"])
    assert done.exit_code == 0, done.output
    assert "detection.csv" in done.output and len(_rows(tmp_path / "set" / "detection.csv")) == 3
    for bad, message in (("3-1", "backwards"), ("a-b", "count or a range")):
        failed = runner.invoke(app, [*args, "--out", str(tmp_path / bad), "--lesions-per-image", bad])
        assert isinstance(failed.exception, MedlearnError) and message in str(failed.exception)
        assert not (tmp_path / bad).exists()
