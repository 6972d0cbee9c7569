"""Point and box annotation files as users have them: each format read with the right coordinates, space and
names (LPS turned into RAS), every broken file a one-line MedlearnError naming the place, and write_fcsv ->
read_fcsv losing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import MedlearnError
from medlearn.io.markups import (
    BoxSet,
    PointSet,
    read_annotation_file,
    read_boxes_csv,
    read_fcsv,
    read_markups_json,
    read_points_csv,
    write_fcsv,
)

# A .fcsv as 3D Slicer 5 writes it (LPS since 4.11): fixed header, a label with a comma quoted.
FCSV_LPS = """\
# Markups fiducial file version = 5.6
# CoordinateSystem = LPS
# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID
1,-12.5,30.25,-7,0,0,0,1,1,1,0,nasion,,vtkMRMLScalarVolumeNode1
2,40,-5.5,12.75,0,0,0,1,1,1,0,"tragus, left",placed twice,vtkMRMLScalarVolumeNode1
"""

# The same file as Slicer 4.10 and earlier wrote it: numeric code, RAS.
FCSV_RAS_NUMERIC = """\
# Markups fiducial file version = 4.10
# CoordinateSystem = 0
# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID
vtkMRMLMarkupsFiducialNode_0,12.5,-30.25,-7,0,0,0,1,1,1,0,nasion,,
vtkMRMLMarkupsFiducialNode_1,-40,5.5,12.75,0,0,0,1,1,1,0,"tragus, left",,
"""

RAS_EXPECTED = np.array([[12.5, -30.25, -7.0], [-40.0, 5.5, 12.75]])


def _slicer5_mrk_json(coordinate_system: str | None = "LPS") -> dict:
    """A Markups JSON as Slicer 5 writes it (vtkMRMLMarkupsJsonStorageNode), shortened: a point list with one
    undefined placeholder (written with ``"position": ""``) and a line markup."""
    orientation = [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]

    def point(index: int, label: str, position: list[float] | str, status: str = "defined") -> dict:
        return {
            "id": str(index),
            "label": label,
            "description": "",
            "associatedNodeID": "vtkMRMLScalarVolumeNode1",
            "position": position,
            "orientation": orientation,
            "selected": True,
            "locked": False,
            "visibility": True,
            "positionStatus": status,
        }

    fiducial = {
        "type": "Fiducial",
        "coordinateSystem": coordinate_system,
        "coordinateUnits": "mm",
        "locked": False,
        "fixedNumberOfControlPoints": True,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 3,
        "controlPoints": [
            point(1, "nasion", [-12.5, 30.25, -7.0]),
            point(2, "sella", "", "undefined"),
            point(3, "tragus, left", [40.0, -5.5, 12.75]),
        ],
        "measurements": [],
        "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0], "glyphType": "Sphere3D"},
    }
    if coordinate_system is None:
        del fiducial["coordinateSystem"]
    line = {
        "type": "Line",
        "coordinateSystem": "RAS",
        "coordinateUnits": "mm",
        "locked": False,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 2,
        "controlPoints": [point(1, "L-1", [1.0, 2.0, 3.0]), point(2, "L-2", [4.0, 5.0, 6.0])],
        "measurements": [
            {"name": "length", "enabled": True, "value": 5.196, "units": "mm", "printFormat": "%-#4.4g%s"}
        ],
    }
    return {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
        "Schema/markups-schema-v1.0.3.json#",
        "markups": [fiducial, line],
    }


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _fails(path: Path, *fragments: str) -> MedlearnError:
    """Reading ``path`` raises a MedlearnError naming the file and containing every fragment."""
    with pytest.raises(MedlearnError) as caught:
        read_annotation_file(path)
    message = str(caught.value)
    assert caught.value.path == str(path) and path.name in message
    for fragment in fragments:
        assert fragment in message, message
    return caught.value


# --------------------------------------------------------------------------------------------------------------
# points CSV


def test_points_csv_index_space_3d(tmp_path: Path) -> None:
    path = _write(tmp_path, "pts.csv", " I , J,K,Radius_MM,label,name\n10,20.5,3,4.5,nodule,\n0,0,0,,, apex \n")
    points = read_points_csv(path)
    assert isinstance(points, PointSet) and len(points) == 2
    assert points.space == "index" and points.source == str(path)
    assert points.coordinates.dtype == np.float64
    np.testing.assert_array_equal(points.coordinates, [[10, 20.5, 3], [0, 0, 0]])
    assert points.radius_mm[0] == 4.5 and np.isnan(points.radius_mm[1])
    assert points.labels == ("nodule", "") and points.names == ("", "apex")


def test_points_csv_world_space_2d_without_optional_columns(tmp_path: Path) -> None:
    points = read_annotation_file(_write(tmp_path, "pts.csv", "x,y\n-1.5,2\n-1.5,2\n"))
    assert isinstance(points, PointSet) and points.space == "world"
    np.testing.assert_array_equal(points.coordinates, [[-1.5, 2.0], [-1.5, 2.0]])  # duplicates kept
    assert np.isnan(points.radius_mm).all() and points.labels == ("", "") and points.names == ("", "")


def test_points_csv_excel_bom_and_trailing_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffx,y,z,,\r\n1,2,3,,\r\n\r\n4,5,6\r\n".encode())
    np.testing.assert_array_equal(read_points_csv(path).coordinates, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(("header", "dims"), [("i,j", 2), ("x,y,z,label", 3)])
def test_points_csv_header_without_rows_is_an_empty_set(tmp_path: Path, header: str, dims: int) -> None:
    points = read_points_csv(_write(tmp_path, "negative.csv", header + "\n"))
    assert len(points) == 0 and points.coordinates.shape == (0, dims) and points.radius_mm.shape == (0,)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ("empty file",)),
        ("\n  \n", ("empty file",)),
        ("i,j,k,x,y,z\n1,2,3,4,5,6\n", ("both index",)),
        ("x,y,colour\n1,2,red\n", ("unknown column 'colour'", "i, j, k, x, y, z, radius_mm, label, name")),
        ("x;y;z\n1;2;3\n", ("comma-separated",)),
        ("label,name\na,b\n", ("no coordinate columns",)),
        ("x,z\n1,2\n", ("column(s) x, z without both x and y",)),
        ("i,j,z\n1,2,3\n", ("both index",)),
        ("x,y,x\n1,2,3\n", ("'x' appears 2 times",)),
        ("x,y,z\n1,2,3\n4,5\n", ("row 2 (line 3)", "2 values", "3 columns")),
        ("x,y,z\n1,2,3,4\n", ("row 1 (line 2)", "4 values")),
        ("x,y,z\n1,2,3\n1,two,3\n", ("row 2 (line 3)", "y is not a number", "'two'")),
        ("x,y,z\n1,2,3\n4,5,6\n7,nan,9\n", ("row 3 (line 4): y is not a finite number",)),
        ("x,y,z\n1,2,inf\n", ("row 1 (line 2): z is not a finite number",)),
        ("x,y,z\n1,,3\n", ("row 1 (line 2): y is empty",)),
        ("i,j,radius_mm\n1,2,-3\n", ("row 1 (line 2): radius_mm is negative",)),
        ("i,j,radius_mm\n1,2,nan\n", ("row 1 (line 2): radius_mm is not a finite number",)),
        ('x,y\n1,"2\n', ("line 2", "not valid CSV")),
        ('x,y,label\n1,2,"a\n3,4,b\n', ("not valid CSV",)),  # an unclosed quote must not swallow rows
    ],
)
def test_points_csv_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _fails(_write(tmp_path, "bad.csv", text), *fragments)


def test_points_csv_nul_byte_and_not_utf8(tmp_path: Path) -> None:
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"x,y\n1,\x002\n")
    _fails(nul, "line 2")  # Python < 3.11: "not valid CSV (line contains NUL)"; later: "y is not a number"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("x,y,name\n1,2,r\xe9gion\n".encode("latin-1"))
    _fails(latin, "not UTF-8")


# --------------------------------------------------------------------------------------------------------------
# boxes CSV


def test_boxes_csv_3d_and_2d(tmp_path: Path) -> None:
    path = _write(tmp_path, "boxes.csv", "Label,X0,Y0,Z0,X1,Y1,Z1\nlesion,-10,-20,5,-4,-2,5\ncyst,0,0,0,1.5,2,3\n")
    boxes = read_annotation_file(path)
    assert isinstance(boxes, BoxSet) and len(boxes) == 2 and boxes.source == str(path)
    np.testing.assert_array_equal(boxes.low, [[-10, -20, 5], [0, 0, 0]])
    np.testing.assert_array_equal(boxes.high, [[-4, -2, 5], [1.5, 2, 3]])
    assert boxes.labels == ("lesion", "cyst")

    flat = read_boxes_csv(_write(tmp_path, "flat.csv", "x0,y0,x1,y1\n1,2,3,4\n"))
    assert flat.low.shape == (1, 2) and flat.labels == ("",)
    np.testing.assert_array_equal(flat.high, [[3, 4]])


def test_boxes_csv_without_rows_is_an_empty_set(tmp_path: Path) -> None:
    boxes = read_annotation_file(_write(tmp_path, "none.csv", "label,x0,y0,z0,x1,y1,z1\n"))
    assert isinstance(boxes, BoxSet) and len(boxes) == 0 and boxes.low.shape == boxes.high.shape == (0, 3)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("label,x0,y0,x1,y1\na,0,0,1,1\nb,5,0,4,1\n", ("row 2 (line 3)", "x1 (4) is below x0 (5)")),
        ("x0,y0,z0,x1,y1,z1\n0,0,9,1,1,2\n", ("row 1 (line 2)", "z1 (2) is below z0 (9)")),
        ("x0,y0,z0,x1,y1\n0,0,0,1,1\n", ("missing box column(s) z1",)),
        ("x0,y0,x1,y1,score\n0,0,1,1,0.9\n", ("unknown column 'score'", "label, x0, y0, z0, x1, y1, z1")),
        ("x0,y0,x1,y1\n0,0,1,inf\n", ("row 1 (line 2): y1 is not a finite number",)),
    ],
)
def test_boxes_csv_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _fails(_write(tmp_path, "boxes.csv", text), *fragments)


# --------------------------------------------------------------------------------------------------------------
# 3D Slicer .fcsv


def test_fcsv_lps_is_converted_to_ras(tmp_path: Path) -> None:
    points = read_annotation_file(_write(tmp_path, "landmarks.fcsv", FCSV_LPS))
    assert isinstance(points, PointSet) and points.space == "world"
    np.testing.assert_array_equal(points.coordinates, RAS_EXPECTED)
    assert points.names == ("nasion", "tragus, left") and points.labels == ("", "")
    assert points.radius_mm.shape == (2,) and np.isnan(points.radius_mm).all()


def test_fcsv_ras_numeric_code_is_kept(tmp_path: Path) -> None:
    points = read_fcsv(_write(tmp_path, "old.fcsv", FCSV_RAS_NUMERIC))
    np.testing.assert_array_equal(points.coordinates, RAS_EXPECTED)
    assert points.names == ("nasion", "tragus, left")


def test_fcsv_numeric_lps_code_without_columns_line(tmp_path: Path) -> None:
    text = "# CoordinateSystem = 1\n1,1,2,3,0,0,0,1,1,1,0,A,,\n"
    points = read_fcsv(_write(tmp_path, "bare.fcsv", text))
    np.testing.assert_array_equal(points.coordinates, [[-1.0, -2.0, 3.0]])
    assert points.names == ("A",)


def test_fcsv_slicer3_columns_and_missing_coordinate_system(tmp_path: Path) -> None:
    text = "# Fiducial List file /tmp/F.fcsv\n# numPoints = 1\n# columns = label,x,y,z,sel,vis\nF1,1,2,3,1,1\n"
    points = read_fcsv(_write(tmp_path, "slicer3.fcsv", text))
    np.testing.assert_array_equal(points.coordinates, [[1.0, 2.0, 3.0]])  # no CoordinateSystem line: RAS
    assert points.names == ("F1",)


def test_fcsv_with_header_only_is_empty(tmp_path: Path) -> None:
    header = "".join(FCSV_LPS.splitlines(keepends=True)[:3])
    points = read_fcsv(_write(tmp_path, "empty.fcsv", header))
    assert len(points) == 0 and points.coordinates.shape == (0, 3)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("# CoordinateSystem = IJK\n1,1,2,3\n", ("line 1", "coordinate system 'IJK'")),
        ("# CoordinateSystem = RAS\n1,1,2\n", ("line 2", "too few for x, y, z")),
        ("# CoordinateSystem = RAS\n\n1,1,2,3\n2,1,abc,3\n", ("line 4", "y is not a number")),
        ("# CoordinateSystem = RAS\n1,1,2,nan\n", ("line 2: z is not a finite number",)),
        ("# columns = id,label\n1,a\n", ("no 'x' column",)),
    ],
)
def test_fcsv_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _fails(_write(tmp_path, "bad.fcsv", text), *fragments)


# --------------------------------------------------------------------------------------------------------------
# 3D Slicer .mrk.json


def test_mrk_json_slicer5_lps_every_markup_undefined_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, "landmarks.mrk.json", json.dumps(_slicer5_mrk_json("LPS"), indent=4))
    points = read_annotation_file(path)
    assert isinstance(points, PointSet) and points.space == "world" and len(points) == 4
    expected = np.vstack([RAS_EXPECTED, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # the line markup is RAS already
    np.testing.assert_array_equal(points.coordinates, expected)
    assert points.names == ("nasion", "tragus, left", "L-1", "L-2")
    assert points.labels == ("",) * 4 and np.isnan(points.radius_mm).all()


def test_mrk_json_ras_and_missing_coordinate_system(tmp_path: Path) -> None:
    ras = read_markups_json(_write(tmp_path, "ras.mrk.json", json.dumps(_slicer5_mrk_json("RAS"))))
    np.testing.assert_array_equal(ras.coordinates[:2], [[-12.5, 30.25, -7.0], [40.0, -5.5, 12.75]])  # as written
    default = read_markups_json(_write(tmp_path, "default.json", json.dumps(_slicer5_mrk_json(None))))
    np.testing.assert_array_equal(default.coordinates[:2], RAS_EXPECTED)  # missing means LPS


def test_mrk_json_minimal_documented_example_and_units(tmp_path: Path) -> None:
    document = {
        "markups": [
            {"type": "Fiducial", "controlPoints": [{"label": "F-1", "position": [1, 2, 3]}, {"label": "no pos"}]},
            {
                "type": "Fiducial",
                "coordinateSystem": "RAS",
                "coordinateUnits": "um",
                "controlPoints": [{"position": [1000, -2000, 500]}],
            },
            {"type": "Fiducial", "coordinateSystem": "RAS"},
        ]
    }
    points = read_markups_json(_write(tmp_path, "mini.mrk.json", json.dumps(document)))
    np.testing.assert_allclose(points.coordinates, [[-1, -2, 3], [1, -2, 0.5]])
    assert points.names == ("F-1", "")


def test_mrk_json_without_points_is_empty(tmp_path: Path) -> None:
    points = read_markups_json(_write(tmp_path, "none.mrk.json", '{"markups": []}'))
    assert len(points) == 0 and points.coordinates.shape == (0, 3)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('{"markups": [', ("not valid JSON", "line 1")),
        ("[1, 2]", ("no 'markups' list",)),
        ('{"markups": [{"controlPoints": [{"label": "A", "position": [1, 2]}]}]}', ("control point 1", "'A'", "3")),
        ('{"markups": [{"controlPoints": [{"position": [1, NaN, 2]}]}]}', ("control point 1: y is not a finite",)),
        ('{"markups": [{"controlPoints": [{"position": [1, "2", 3]}]}]}', ("y is not a number",)),
        ('{"markups": [{"controlPoints": [{"position": [1, true, 3]}]}]}', ("y is not a number",)),
        ('{"markups": [{}, {"coordinateSystem": "IJK"}]}', ("markup 2", "'IJK'")),
        ('{"markups": [{"coordinateUnits": "cm"}]}', ("markup 1", "coordinateUnits 'cm'")),
        ('{"markups": [{"controlPoints": [{"position": [1, 2, 1e999]}]}]}', ("z is not a finite number",)),
    ],
)
def test_mrk_json_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _fails(_write(tmp_path, "bad.mrk.json", text), *fragments)


# --------------------------------------------------------------------------------------------------------------
# dispatch, missing files


def test_missing_file_folder_and_unknown_suffix(tmp_path: Path) -> None:
    for name in ("gone.csv", "gone.fcsv", "gone.mrk.json"):
        _fails(tmp_path / name, "file not found")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    _fails(folder, "folder")
    _fails(_write(tmp_path, "points.txt", "x,y\n1,2\n"), "unknown annotation format")


# --------------------------------------------------------------------------------------------------------------
# write_fcsv


def test_write_fcsv_round_trip(tmp_path: Path) -> None:
    world = np.array([[1.0 / 3.0, -2.5, 1e-7], [-123.456789012345, 0.0, 98.7]])
    names = ["apex", 'base, "left"']
    path = write_fcsv(tmp_path / "out" / "pred.fcsv", world, names, ["score 0.9", ""])
    assert path == tmp_path / "out" / "pred.fcsv"
    text = path.read_text(encoding="utf-8")
    assert "# CoordinateSystem = RAS" in text and "# columns = id,x,y,z," in text
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind
    points = read_annotation_file(path)
    assert isinstance(points, PointSet)
    np.testing.assert_array_equal(points.coordinates, world)  # bit-exact
    assert points.names == tuple(names) and points.space == "world"


def test_write_fcsv_empty_and_bad_arguments(tmp_path: Path) -> None:
    empty = write_fcsv(tmp_path / "none.fcsv", np.zeros((0, 3)), [])
    assert len(read_fcsv(empty)) == 0
    with pytest.raises(ValueError, match="N, 3"):
        write_fcsv(tmp_path / "a.fcsv", np.zeros((2, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="names"):
        write_fcsv(tmp_path / "a.fcsv", np.zeros((2, 3)), ["a"])
    with pytest.raises(ValueError, match="finite"):
        write_fcsv(tmp_path / "a.fcsv", np.array([[0.0, np.nan, 0.0]]), ["a"])
    with pytest.raises(ValueError, match="single-line"):
        write_fcsv(tmp_path / "a.fcsv", np.zeros((1, 3)), ["a\nb"])
    assert not (tmp_path / "a.fcsv").exists()


def test_pointset_checks_its_shapes() -> None:
    with pytest.raises(ValueError):
        PointSet(np.zeros((2, 4)), "world", np.full(2, np.nan), ("", ""), ("", ""), "x")
    with pytest.raises(ValueError):
        PointSet(np.zeros((2, 3)), "world", np.full(1, np.nan), ("", ""), ("", ""), "x")
    with pytest.raises(ValueError):
        BoxSet(np.zeros((1, 3)), np.zeros((1, 2)), ("",), "x")
