"""Detection annotations become objects on the image's own grid: instance masks (real nuclei), points in index or
world coordinates (a real, non-identity-affine brain MR), Slicer fiducials, boxes, and negative images; every
broken annotation is a MedlearnError naming its file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.measure import label as skimage_label

from medlearn.apps.detection.annotations import (
    load_detection_samples,
    objects_from_mask,
    objects_from_points,
    read_objects,
)
from medlearn.data.records import Sample
from medlearn.errors import MedlearnError
from medlearn.io import load
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage
from medlearn.io.markups import PointSet, write_fcsv

DEFAULT_RADIUS = 4.0


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: real images written as users have them


@pytest.fixture(scope="module")
def nuclei(shared_data: Path, tmp_path_factory) -> dict:
    """A 160 x 160 tile of the DSB2018 nuclei image and its instance labels (touching nuclei included), written as
    16-bit PNGs with PIL (no medlearn metadata: identity affine)."""
    folder = tmp_path_factory.mktemp("nuclei")
    image = load(shared_data / "nuclei-dsb2018" / "img2d.tif").array[0][:160, :160]
    mask = load(shared_data / "nuclei-dsb2018" / "mask2d.tif").array[0][:160, :160]
    Image.fromarray(np.ascontiguousarray(image.astype(np.uint16))).save(folder / "image.png")
    Image.fromarray(np.ascontiguousarray(mask.astype(np.uint16))).save(folder / "mask.png")
    return {"folder": folder, "image": folder / "image.png", "mask": folder / "mask.png", "labels": mask}


@pytest.fixture(scope="module")
def brain(shared_data: Path):
    """A real MR volume (256 x 256 x 25) whose affine flips x and has 0.78 x 0.78 x 6.5 mm voxels."""
    image = load(shared_data / "pyradiomics" / "brain1_image.nrrd")
    assert not np.allclose(image.affine, np.diag(np.diag(np.abs(image.affine))))  # really not identity-like
    return image


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _sample(image: Path, annotation: Path | None) -> Sample:
    return Sample(path=image, target=annotation)


# ---------------------------------------------------------------------------------------------------------------
# Masks


def test_instance_mask_gives_one_object_per_connected_component_of_each_value(nuclei):
    """Real nuclei: as many objects as 8-connected components per value (touching nuclei stay apart), centroids
    inside their objects, ids 1..N in the object map, equivalent-disc radii."""
    image = load(nuclei["image"])
    objects = read_objects(_sample(nuclei["image"], nuclei["mask"]), image, default_radius_mm=DEFAULT_RADIUS)
    labels = nuclei["labels"]
    expected = skimage_label(labels.astype(np.int64), background=0, connectivity=2)  # different values = regions
    count = int(expected.max())
    assert count >= 10
    assert objects.kind == "mask" and len(objects) == count
    assert objects.object_map.shape == labels.shape
    np.testing.assert_array_equal(np.unique(objects.object_map), np.arange(count + 1))
    np.testing.assert_array_equal(objects.object_map > 0, labels > 0)
    # touching nuclei are really in this tile, so a binary view would have merged some of them
    assert skimage_label(labels > 0, connectivity=2).max() < count
    for n, (centre, radius) in enumerate(zip(objects.centres, objects.radius_mm, strict=True), start=1):
        voxels = np.argwhere(objects.object_map == n)
        np.testing.assert_allclose(centre, voxels.mean(axis=0), atol=1e-9)
        nearest = np.min(np.linalg.norm(voxels - centre, axis=1))
        assert nearest <= 1.5  # a nucleus cut by the tile's edge may be crescent-shaped ...
        whole = voxels.min() > 0 and voxels.max(axis=0).max() < labels.shape[0] - 1
        if whole:  # ... but whole nuclei are convex enough to hold their centroid
            assert objects.object_map[tuple(np.rint(centre).astype(int))] == n
        assert len(np.unique(labels[objects.object_map == n])) == 1  # one value per object
        np.testing.assert_allclose(np.pi * radius**2, len(voxels), rtol=1e-9)  # spacing 1 mm
    assert set(objects.labels) == {str(v) for v in np.unique(labels) if v}


def test_equivalent_radius_uses_the_image_spacing(nuclei):
    """Area in mm^2 (voxels x spacing product) = pi r^2: a 0.5 x 0.25 mm grid shrinks radii by sqrt(8)."""
    labels = nuclei["labels"]
    affine = np.diag([0.5, 0.25, 1.0, 1.0])
    image = image_from_affine(labels[None].astype(np.float32), affine)
    mask = image_from_affine(labels[None], affine)
    fine = objects_from_mask(mask, image)
    unit = objects_from_mask(image_from_affine(labels[None], np.eye(4)), image_from_affine(labels[None], np.eye(4)))
    areas = np.array([np.sum(fine.object_map == n) for n in range(1, len(fine) + 1)]) * 0.125
    np.testing.assert_allclose(np.pi * fine.radius_mm**2, areas, rtol=1e-9)
    np.testing.assert_allclose(fine.radius_mm, unit.radius_mm / np.sqrt(8.0), rtol=1e-9)


def test_binary_blobs_touching_at_a_corner_are_one_object_separate_blobs_two():
    """8-connectivity (faces, edges, corners): diagonal neighbours are one object; a gap makes two."""
    diagonal = np.zeros((12, 12), np.uint8)
    diagonal[2:5, 2:5] = 1
    diagonal[5:8, 5:8] = 1  # touches the first blob only at the corner (4, 4)-(5, 5)
    apart = np.zeros((12, 12), np.uint8)
    apart[2:5, 2:5] = 1
    apart[7:10, 7:10] = 1
    image = image_from_affine(np.zeros((1, 12, 12), np.float32), np.eye(4))
    one = objects_from_mask(image_from_affine(diagonal[None], np.eye(4)), image)
    two = objects_from_mask(image_from_affine(apart[None], np.eye(4)), image)
    assert len(one) == 1
    np.testing.assert_allclose(one.centres, [[4.5, 4.5]])
    assert len(two) == 2
    np.testing.assert_allclose(sorted(map(tuple, two.centres)), [(3.0, 3.0), (8.0, 8.0)])


def test_a_real_3d_label_volume_gives_spheres_of_the_same_volume(shared_data, brain):
    """3D: components of a real NRRD label on its anisotropic volume; 4/3 pi r^3 = voxels x 0.78 x 0.78 x 6.5 mm."""
    label_path = shared_data / "pyradiomics" / "brain1_label.nrrd"
    objects = read_objects(_sample(Path(brain.source), label_path), brain, default_radius_mm=DEFAULT_RADIUS)
    labels = load(label_path).array[0]
    count = int(skimage_label(labels, background=0, connectivity=3).max())
    assert objects.kind == "mask" and len(objects) == count >= 1 and objects.centres.shape == (count, 3)
    for n, (centre, radius) in enumerate(zip(objects.centres, objects.radius_mm, strict=True), start=1):
        voxels = np.argwhere(objects.object_map == n)
        np.testing.assert_allclose(centre, voxels.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(4 / 3 * np.pi * radius**3, len(voxels) * np.prod(brain.spacing), rtol=1e-9)


def test_a_mask_with_another_geometry_than_its_image_is_refused(nuclei, tmp_path):
    """A mask of another shape, or of the same shape on another grid, must not be read onto the image."""
    image = load(nuclei["image"])
    cropped = tmp_path / "cropped.png"
    Image.fromarray(np.ascontiguousarray(nuclei["labels"][:150].astype(np.uint16))).save(cropped)
    with pytest.raises(MedlearnError, match="does not match"):
        read_objects(_sample(nuclei["image"], cropped), image, default_radius_mm=DEFAULT_RADIUS)
    shifted = image_from_affine(nuclei["labels"][None], np.diag([2.0, 2.0, 1.0, 1.0]), source="shifted.png")
    with pytest.raises(MedlearnError, match="geometry"):
        objects_from_mask(shifted, image)


# ---------------------------------------------------------------------------------------------------------------
# Points


def test_index_points_on_a_2d_png_with_default_and_given_radii(nuclei, tmp_path):
    """``i,j`` are array indices as loaded; an empty ``radius_mm`` cell takes the run's default radius."""
    points = _write(tmp_path / "points.csv", "i,j,radius_mm,label\n10.5,20,,cell\n100,150.25,7.5,cell\n0,0,,\n")
    image = load(nuclei["image"])
    objects = read_objects(_sample(nuclei["image"], points), image, default_radius_mm=DEFAULT_RADIUS)
    assert objects.kind == "points" and objects.object_map is None
    np.testing.assert_allclose(objects.centres, [[10.5, 20.0], [100.0, 150.25], [0.0, 0.0]])
    np.testing.assert_allclose(objects.radius_mm, [DEFAULT_RADIUS, 7.5, DEFAULT_RADIUS])
    assert objects.labels == ("cell", "cell", "")


def test_world_points_on_a_real_volume_map_through_the_inverse_affine(brain, tmp_path):
    """``x,y,z`` (RAS mm) on a volume with a flipped, anisotropic affine land on inv(affine) @ world."""
    voxels = np.array([[100.3, 50.7, 12.2], [0.0, 255.0, 24.0], [200.0, 10.0, 3.5]])
    world = (brain.affine @ np.c_[voxels, np.ones(len(voxels))].T).T[:, :3]
    rows = "".join(f"{float(x)!r},{float(y)!r},{float(z)!r}\n" for x, y, z in world)
    points = _write(tmp_path / "world.csv", "x,y,z\n" + rows)
    objects = read_objects(_sample(Path(brain.source), points), brain, default_radius_mm=DEFAULT_RADIUS)
    expected = (np.linalg.inv(brain.affine) @ np.c_[world, np.ones(len(world))].T).T[:, :3]
    np.testing.assert_allclose(objects.centres, expected, atol=1e-6)
    np.testing.assert_allclose(objects.centres, voxels, atol=1e-6)
    np.testing.assert_allclose(objects.radius_mm, DEFAULT_RADIUS)


def test_a_point_outside_the_image_is_an_error_naming_the_annotation_file(brain, tmp_path):
    """A point beyond the volume (here past the last slice) must not be clipped or dropped silently."""
    world = brain.affine @ np.array([100.0, 100.0, 30.0, 1.0])  # the volume has 25 slices
    points = _write(tmp_path / "outside.csv", f"x,y,z\n{float(world[0])!r},{float(world[1])!r},{float(world[2])!r}\n")
    with pytest.raises(MedlearnError, match="outside the image") as error:
        read_objects(_sample(Path(brain.source), points), brain, default_radius_mm=DEFAULT_RADIUS)
    assert error.value.path == str(points)


def test_index_points_with_the_wrong_number_of_coordinates_are_an_error(brain, tmp_path):
    """``i,j`` on a 3D volume is ambiguous (which slice?): an error naming the file, never a guess."""
    points = _write(tmp_path / "two.csv", "i,j\n10,20\n")
    with pytest.raises(MedlearnError, match="2 index coordinates") as error:
        read_objects(_sample(Path(brain.source), points), brain, default_radius_mm=DEFAULT_RADIUS)
    assert error.value.path == str(points)


def test_exact_duplicate_points_count_once_with_a_warning(nuclei, tmp_path, caplog):
    """A double click in a viewer is one finding, not two (one of which would count as missed)."""
    points = _write(tmp_path / "twice.csv", "i,j\n10,20\n30,40\n10,20\n10,20.5\n")
    image = load(nuclei["image"])
    with caplog.at_level(logging.WARNING, logger="medlearn"):
        objects = read_objects(_sample(nuclei["image"], points), image, default_radius_mm=DEFAULT_RADIUS)
    np.testing.assert_allclose(objects.centres, [[10, 20], [30, 40], [10, 20.5]])  # a near point is another
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "duplicate" in r.getMessage()]
    assert len(warnings) == 1 and "1 duplicate" in warnings[0].getMessage()


def test_a_header_only_points_file_is_a_negative_image(brain, tmp_path):
    """No rows = no objects (a negative image), with 3D-shaped empty centres."""
    points = _write(tmp_path / "none.csv", "x,y,z\n")
    objects = read_objects(_sample(Path(brain.source), points), brain, default_radius_mm=DEFAULT_RADIUS)
    assert len(objects) == 0 and objects.centres.shape == (0, 3) and objects.radius_mm.shape == (0,)


def test_slicer_fiducials_on_a_real_volume(brain, tmp_path):
    """A .fcsv (RAS, as write_fcsv writes it) lands on the voxels the points were made from, names kept."""
    voxels = np.array([[128.0, 128.0, 12.0], [20.25, 230.5, 1.75]])
    world = (brain.affine @ np.c_[voxels, np.ones(len(voxels))].T).T[:, :3]
    fcsv = write_fcsv(tmp_path / "marks.fcsv", world, ["centre", "corner"])
    objects = read_objects(_sample(Path(brain.source), fcsv), brain, default_radius_mm=DEFAULT_RADIUS)
    assert objects.kind == "points"
    np.testing.assert_allclose(objects.centres, voxels, atol=1e-6)
    assert objects.names == ("centre", "corner")
    np.testing.assert_allclose(objects.radius_mm, DEFAULT_RADIUS)


# ---------------------------------------------------------------------------------------------------------------
# Boxes


def _grid_2d() -> MedicalImage:
    """A 2D image on 0.5 x 2 mm voxels with the origin at (10, -4) mm."""
    affine = np.diag([0.5, 2.0, 1.0, 1.0])
    affine[:2, 3] = [10.0, -4.0]
    return image_from_affine(np.zeros((1, 20, 12), np.float32), affine, source="grid.png")


def test_a_box_fills_the_voxels_inside_it_and_is_centred_in_it(tmp_path):
    """World-mm box -> the voxels whose centres lie in it, the centre in its middle (in voxels)."""
    image = _grid_2d()
    boxes = _write(tmp_path / "boxes.csv", "label,x0,y0,x1,y1\nlesion,11.8,-0.1,14.2,8.1\n")
    objects = read_objects(_sample(Path("grid.png"), boxes), image, default_radius_mm=DEFAULT_RADIUS)
    assert objects.kind == "boxes" and objects.labels == ("lesion",)
    expected = np.zeros((20, 12), np.int32)
    expected[4:9, 2:7] = 1  # x 11.8..14.2 mm -> i 3.6..8.4; y -0.1..8.1 mm -> j 1.95..6.05
    np.testing.assert_array_equal(objects.object_map, expected)
    np.testing.assert_allclose(objects.centres, [[6.0, 4.0]], atol=1e-9)


def test_a_world_box_on_a_volume_with_a_flipped_axis_fills_the_right_voxels(brain, tmp_path):
    """On the LAS volume x runs against the array's first axis: the box's low x corner is the high i."""
    low, high = np.array([100, 40, 5]), np.array([110, 52, 8])  # voxels, inclusive
    corners = (brain.affine @ np.c_[np.array([low - 0.4, high + 0.4]), np.ones(2)].T).T[:, :3]
    x0, y0, z0 = corners.min(axis=0)
    x1, y1, z1 = corners.max(axis=0)
    boxes = _write(tmp_path / "box3d.csv", f"x0,y0,z0,x1,y1,z1\n{x0},{y0},{z0},{x1},{y1},{z1}\n")
    objects = read_objects(_sample(Path(brain.source), boxes), brain, default_radius_mm=DEFAULT_RADIUS)
    where = np.argwhere(objects.object_map == 1)
    np.testing.assert_array_equal(where.min(axis=0), low)
    np.testing.assert_array_equal(where.max(axis=0), high)
    assert len(where) == np.prod(high - low + 1)
    np.testing.assert_allclose(objects.centres, [(low + high) / 2], atol=1e-6)


def test_a_box_outside_the_image_is_an_error(tmp_path):
    image = _grid_2d()
    boxes = _write(tmp_path / "far.csv", "x0,y0,x1,y1\n100,100,110,110\n")
    with pytest.raises(MedlearnError, match="outside the image") as error:
        read_objects(_sample(Path("grid.png"), boxes), image, default_radius_mm=DEFAULT_RADIUS)
    assert error.value.path == str(boxes)


# ---------------------------------------------------------------------------------------------------------------
# Sample lists and masks of points


def test_detection_csv_with_an_empty_annotation_cell_is_a_negative_image(nuclei):
    """``image,annotation,group``: an empty cell is a negative image (target None, kind "none", no objects)."""
    folder = nuclei["folder"]
    _write(folder / "points.csv", "i,j\n5,5\n")
    listing = _write(
        folder / "detection.csv", "image,annotation,group\nimage.png,mask.png,a\nimage.png,points.csv,b\nimage.png,,c\n"
    )
    samples = load_detection_samples(listing)
    assert [s.target.name if s.target else None for s in samples] == ["mask.png", "points.csv", None]
    assert [s.group for s in samples] == ["a", "b", "c"]
    image = load(samples[2].path)
    negative = read_objects(samples[2], image, default_radius_mm=DEFAULT_RADIUS)
    assert negative.kind == "none" and len(negative) == 0 and negative.centres.shape == (0, 2)


@pytest.mark.parametrize(
    "text", ["image,annotation\nimage.png,\nimage.png,\n", "image,label\nimage.png,yes\n"], ids=["empty", "no-column"]
)
def test_a_detection_csv_without_any_annotation_is_an_error(nuclei, text):
    """A CSV where no row names an annotation is a mistake (wrong column, wrong file), not all-negative data."""
    listing = _write(nuclei["folder"] / "nothing.csv", text)
    with pytest.raises(MedlearnError, match="annotation"):
        load_detection_samples(listing)


@pytest.mark.parametrize("spacing", [1.0, 0.5])
def test_point_masks_draw_balls_of_the_radius(spacing):
    """``ImageObjects.mask`` for points: a disc of radius r mm covers about pi r^2 mm^2, on any spacing."""
    image = image_from_affine(np.zeros((1, 64, 64), np.float32), np.diag([spacing, spacing, 1.0, 1.0]))
    points = PointSet(np.array([[20.0, 20.0], [40.3, 44.6]]), "index", np.array([5.0, 3.0]), ("", ""), ("", ""), "p")
    objects = objects_from_points(points, image, default_radius_mm=DEFAULT_RADIUS)
    mask = objects.mask(image)
    assert mask.array.shape == (1, 64, 64) and np.array_equal(mask.affine, image.affine)
    components, count = ndimage.label(mask.array[0])
    assert count == 2
    for centre, radius in zip(objects.centres, objects.radius_mm, strict=True):
        component = components == components[tuple(np.rint(centre).astype(int))]
        area = component.sum() * spacing**2
        np.testing.assert_allclose(area, np.pi * radius**2, rtol=0.12)
        np.testing.assert_allclose(np.argwhere(component).mean(axis=0), centre, atol=0.5)
