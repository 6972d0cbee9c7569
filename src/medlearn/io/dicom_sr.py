"""Write detected points as a DICOM Structured Report (TID 1500 measurement report) of the image they were found on.

Why an SR rather than only a CSV: the report joins the source's patient and study, names the algorithm that made
it, references the source instances as evidence, and a viewer that reads TID 1500 shows every candidate on the
original images with its score and size.

What is written, and why:

* **Comprehensive 3D SR** (``highdicom.sr.Comprehensive3DSR``): the only SR storage class that may hold 3D
  spatial coordinates (SCOORD3D).
* **TID 1500 Measurement Report** with one **TID 1410 Planar ROI measurement group per candidate** (tracking
  identifier ``"candidate 1"``, ``"candidate 2"``, ... best first, with a tracking UID), whose region is the
  candidate's centre as a **SCOORD3D POINT in the patient coordinate system** (``ImageRegion3D``, LPS mm in the
  source's frame of reference). A point in the frame of reference is exact wherever it lies (between two slices,
  on a series the loader resampled to a regular step) and needs no choice of slice. It is the encoding that both
  viewers named in the issue load as points: 3D Slicer's QuantitativeReporting reads the planar-ROI groups whose
  region is a 3D POINT (``get_planar_roi_measurement_groups(graphic_type=GraphicTypeValues3D.POINT)``) and shows
  them as markups; OHIF renders SCOORD3D points since its TID 1500 SR viewport gained them (Viewers PR 4315), and
  the Imaging Data Commons encodes its point annotations (ProstateX biopsy targets) the same way. A 2D SCOORD POINT
  is loaded by OHIF only, not by Slicer's point reader. TID 1411 (volumetric) is not used: a point is not a volume
  (3D coordinates there describe a volume surface) and both point readers look in planar groups only.
* Sources without a patient geometry (no FrameOfReferenceUID or no ImagePositionPatient: projection radiographs,
  secondary captures) have no patient coordinates, so the point becomes a **2D SCOORD POINT on the referenced
  image** (``ImageRegion``: column, row of the candidate's pixel centre, 0.5-based as DICOM counts, on the frame
  the candidate lies on, the nearest one), computed from ``points_voxel``.
* **Finding** (``finding_type``, "Finding" DCM 121071): ``(52988006, SCT, "Lesion")`` by default; any other
  SNOMED CT concept pydicom knows by name ("Nodule", "Mass", ...) or a coded concept may be given.
* **Geometric purpose** ``(111010, DCM, "Center")`` (CID 219): the point is the candidate's centre, not its
  outline.
* **Score**: a numeric measurement ``(111012, DCM, "Certainty of Finding")`` in ``(%, UCUM)``, 0-100 - the concept
  and unit the DICOM CAD templates use for a detector's confidence in one finding (TID 4006 row 6, TID 4104
  row 12; CID 6048). The value is the detector's score (0-1) times 100; it ranks candidates and is not a
  calibrated probability of disease, which is why ``(111047, DCM, "Probability of cancer")`` is not used, and it is
  a number, not a category, so it is no qualitative evaluation.
* **Radius**: ``(131190003, SCT, "Radius")`` in ``(mm, UCUM)``, from CID 7470 "Linear Measurement".
* **Observer**: a device observer (TID 1004) named after the algorithm, manufacturer "medlearn", whose UID is
  derived from the algorithm's name and version (the same detector gets the same device UID in every report), and
  the algorithm identification (TID 4019: name, version) in every measurement group.
* **Procedure reported** (CID 100): "CT/MRI/PET/NM/XR unspecified body region" after the source's modality, else
  "Imaging procedure".
* **Evidence**: every source instance is listed in the Current Requested Procedure Evidence Sequence.

No candidate: highdicom's TID 1500 needs at least one imaging measurement group, and the standard's other way of
saying "nothing found" (a report holding only qualitative evaluations) is neither written by highdicom nor shown by
a viewer, so nothing is written and ``None`` is returned; the caller records why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

import medlearn
from medlearn.errors import MedlearnError
from medlearn.io.dicom import _frame_positions, _frames, _plane, _stack
from medlearn.io.dicom_seg import _source
from medlearn.utils.atomic import atomic_path

if TYPE_CHECKING:
    from highdicom.sr import CodedConcept

#: RAS+ (medlearn's world) to LPS (DICOM patient coordinates): x and y change sign.
RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])

#: Procedure reported (CID 100) per source modality.
_PROCEDURES = {
    "CT": "CTUnspecifiedBodyRegion",
    "MR": "MRIUnspecifiedBodyRegion",
    "PT": "PETUnspecifiedBodyRegion",
    "NM": "NMUnspecifiedBodyRegion",
    "CR": "XRUnspecifiedBodyRegion",
    "DX": "XRUnspecifiedBodyRegion",
    "RG": "XRUnspecifiedBodyRegion",
}


def write_detection_sr(
    source: str | Path,
    target: str | Path,
    points_world: np.ndarray,
    scores: np.ndarray,
    radii_mm: np.ndarray,
    *,
    points_voxel: np.ndarray | None = None,
    finding: str | Code | CodedConcept = "Lesion",
    algorithm: str = "medlearn centre-heatmap",
    version: str = medlearn.__version__,
    series_description: str = "medlearn detections",
) -> Path | None:
    """Write the candidates found on ``source`` (a DICOM series folder or file) as a TID 1500 SR to ``target``.

    ``points_world`` are the candidates' centres in RAS+ mm (``(N, 3)``, medlearn's world), ``scores`` their
    scores (0-1), ``radii_mm`` their radii; candidates are numbered in the given order. ``points_voxel`` (``(N, d)``
    on the grid ``medlearn.io.load(source)`` returns) is needed only for a source without patient geometry, where
    the points are written on the image instead of in the patient (see the module docstring). ``finding`` is a
    SNOMED CT concept by name, a pydicom ``Code`` or a highdicom ``CodedConcept``. Returns ``target``, or ``None``
    (nothing written) for no candidate.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source, target = Path(source), Path(target)
    world, scores, radii, voxel = _checked(points_world, scores, radii_mm, points_voxel, target)
    if len(scores) == 0:
        return None
    finding_code = _finding_code(finding, target)
    datasets, shape, _ = _source(source, None)
    frame_of_reference = _patient_frame_of_reference(datasets, source)
    if frame_of_reference is None and voxel is None:
        raise MedlearnError(
            "the source has no patient geometry (FrameOfReferenceUID, ImagePositionPatient): the points must be "
            "given in voxels (points_voxel) to be placed on its images",
            source,
        )

    try:  # highdicom refuses what it cannot encode (over-long names, odd sources); say why in one line
        algorithm_id = hd.sr.AlgorithmIdentification(name=algorithm, version=str(version))
        if frame_of_reference is not None:
            regions = [
                hd.sr.ImageRegion3D(
                    graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                    graphic_data=(point * RAS_TO_LPS)[None],
                    frame_of_reference_uid=frame_of_reference,
                )
                for point in world
            ]
        else:
            regions = _image_regions(datasets, shape, voxel, source)
        groups = [
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"candidate {number}"),
                referenced_region=region,
                finding_type=finding_code,
                geometric_purpose=codes.DCM.Center,
                algorithm_id=algorithm_id,
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.CertaintyOfFinding, value=float(score) * 100.0, unit=codes.UCUM.Percent
                    ),
                    hd.sr.Measurement(name=codes.SCT.Radius, value=float(radius), unit=codes.UCUM.Millimeter),
                ],
            )
            for number, (region, score, radius) in enumerate(zip(regions, scores, radii, strict=True), start=1)
        ]
        device = hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_device_uid(algorithm, str(version)),
            name=algorithm,
            manufacturer_name="medlearn",
            model_name=algorithm,
        )
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_device_context=hd.sr.ObserverContext(
                    observer_type=codes.DCM.Device, observer_identifying_attributes=device
                )
            ),
            procedure_reported=_procedure(datasets[0]),
            imaging_measurements=groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=datasets,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=int(datasets[0].get("SeriesNumber") or 0) + 2000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medlearn",
            is_complete=True,
            series_description=series_description,
            manufacturer_model_name=algorithm,
            software_versions=f"medlearn {medlearn.__version__}",
            device_serial_number="0",
        )
    except MedlearnError:
        raise
    except Exception as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise MedlearnError(f"cannot build a DICOM SR of these detections: {detail}", source) from error
    with atomic_path(target) as tmp:
        sr.save_as(tmp, enforce_file_format=True)
    return target


def _checked(
    points_world: np.ndarray,
    scores: np.ndarray,
    radii_mm: np.ndarray,
    points_voxel: np.ndarray | None,
    target: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The inputs as float arrays of matching lengths, finite; refuses anything else."""
    world = np.asarray(points_world, dtype=np.float64)
    world = world.reshape(0, 3) if world.size == 0 else world
    scores = np.asarray(scores, dtype=np.float64)
    radii = np.asarray(radii_mm, dtype=np.float64)
    voxel = None if points_voxel is None else np.asarray(points_voxel, dtype=np.float64)
    if voxel is not None and voxel.size == 0:
        voxel = voxel.reshape(0, 3)
    shapes_ok = (
        world.ndim == 2
        and world.shape[1] == 3
        and scores.shape == radii.shape == (len(world),)
        and (voxel is None or (voxel.ndim == 2 and voxel.shape[1] in (2, 3) and len(voxel) == len(world)))
    )
    if not shapes_ok:
        given = f"{world.shape}, {scores.shape}, {radii.shape}" + ("" if voxel is None else f", {voxel.shape}")
        raise MedlearnError(
            f"points_world (N, 3), scores (N,), radii_mm (N,) and points_voxel (N, 2 or 3) must agree, got {given}",
            target,
        )
    arrays = (world, scores, radii) if voxel is None else (world, scores, radii, voxel)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise MedlearnError("detections hold NaN or infinite values", target)
    if np.any(radii < 0):
        raise MedlearnError("radii must not be negative", target)
    return world, scores, radii, voxel


def _finding_code(finding: str | Code | CodedConcept, target: Path) -> Code | CodedConcept:
    """``finding`` as a coded concept: a code as given, a name as pydicom's SNOMED CT concept of that name."""
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    if isinstance(finding, Code | CodedConcept):
        return finding
    keyword = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^0-9A-Za-z]+", str(finding)) if word)
    try:
        return getattr(codes.SCT, keyword)
    except AttributeError:
        raise MedlearnError(
            f"no SNOMED CT concept named {finding!r} (e.g. 'Lesion', 'Nodule', 'Mass'); pass a coded concept instead",
            target,
        ) from None


def _patient_frame_of_reference(datasets: list[Dataset], source: Path) -> str | None:
    """The source's FrameOfReferenceUID if every frame is placed in the patient (positions known), else None."""
    uids = {str(ds.get("FrameOfReferenceUID") or "") for ds in datasets}
    if len(uids) != 1 or "" in uids:
        return None
    if len(datasets) == 1 and _frames(datasets[0]) > 1:
        placed = _frame_positions(datasets[0], _frames(datasets[0])) is not None
    else:
        placed = all(_plane(ds)[2] is not None for ds in datasets)
    return uids.pop() if placed else None


def _image_regions(datasets: list[Dataset], shape: tuple[int, ...], voxel: np.ndarray, source: Path) -> list:
    """2D SCOORD points on the instance (and frame) each candidate lies on, for sources without patient geometry.

    The loader's grid is ``(rows, cols)`` for a single frame and ``(cols, rows, slices)`` otherwise; voxel centres
    are integers there, pixel centres are at +0.5 in DICOM's image coordinates.
    """
    import highdicom as hd

    if voxel.shape[1] != len(shape):
        raise MedlearnError(f"points_voxel has {voxel.shape[1]} axes, the source's image {len(shape)}", source)
    if len(shape) == 2:
        rows, cols, slices = voxel[:, 0], voxel[:, 1], np.zeros(len(voxel), dtype=int)
    else:
        cols, rows = voxel[:, 0], voxel[:, 1]
        slices = np.clip(np.rint(voxel[:, 2]), 0, shape[2] - 1).astype(int)
    frames = _slice_frames(datasets, source)
    if len(frames) != (1 if len(shape) == 2 else shape[2]):
        raise MedlearnError("the loaded slices do not match the source's instances one to one", source)
    regions = []
    for col, row, k in zip(cols, rows, slices, strict=True):
        ds, frame = frames[k]
        regions.append(
            hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POINT,
                graphic_data=np.array([[float(col) + 0.5, float(row) + 0.5]]),
                source_image=hd.sr.SourceImageForRegion.from_source_image(
                    ds, referenced_frame_numbers=None if frame is None else [frame]
                ),
            )
        )
    return regions


def _slice_frames(datasets: list[Dataset], source: Path) -> list[tuple[Dataset, int | None]]:
    """Loaded slice k -> (its instance, its 1-based frame number or None for a single-frame instance).

    A series' headers come sorted as the loader sorts its slices; a multi-frame file's frames are sorted along the
    slice normal when they carry positions, as the loader does."""
    if len(datasets) > 1:
        return [(ds, None) for ds in datasets]
    ds = datasets[0]
    count = _frames(ds)
    if count == 1:
        return [(ds, None)]
    positions = _frame_positions(ds, count)
    order = np.arange(count) if positions is None else _stack(_plane(ds)[0], positions, source)[0]
    return [(ds, int(frame) + 1) for frame in order]


def _procedure(ds: Dataset) -> Code:
    from pydicom.sr.codedict import codes

    return getattr(codes.cid100, _PROCEDURES.get(str(ds.get("Modality") or ""), "ImagingProcedure"))


def _device_uid(algorithm: str, version: str) -> str:
    """A UID that names the algorithm and version: the same detector is the same device observer in every report."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None, entropy_srcs=["medlearn detector", algorithm, version]))
