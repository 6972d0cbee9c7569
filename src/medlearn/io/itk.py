"""Between medlearn's images and SimpleITK's: images, transforms as displacement fields, points.

ITK's physical space is LPS (x grows to the patient's left, y to the back); medlearn's world is RAS, as
``MedicalImage.affine`` says, so x and y change sign on the way (the same flip 3D Slicer applies). An ITK
transform of a registration maps a point of the *fixed* image to the point of the *moving* image whose value it
takes, which is exactly :mod:`medlearn.io.warp`'s displacement convention: ``u(x) = T(x) - x``.

2D images are registered in their plane: the in-plane part of the affine becomes a 2D ITK geometry and the plane's
world z is kept aside.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medlearn.errors import MedlearnError
from medlearn.io.geometry import image_from_affine
from medlearn.io.image import MedicalImage

#: RAS <-> LPS: x and y change sign (its own inverse).
FLIP = np.diag([-1.0, -1.0, 1.0])


def _geometry(image: MedicalImage) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, origin)`` in LPS: ``steps[:, a]`` is the mm vector of one step along index axis ``a``."""
    ndim = image.spatial_ndim
    if ndim not in (2, 3):
        raise MedlearnError(f"registration works on 2D and 3D images, this one is {ndim}D", image.source)
    steps = (FLIP @ image.affine[:3, :3])[:ndim, :ndim]
    origin = (FLIP @ image.affine[:3, 3])[:ndim]
    return steps, origin


def to_sitk(image: MedicalImage, channel: int = 0, *, dtype: type = np.float32) -> sitk.Image:
    """One channel of ``image`` as a SimpleITK image with the same physical geometry (LPS)."""
    steps, origin = _geometry(image)
    array = np.asarray(image.array[channel], dtype=dtype)
    itk = sitk.GetImageFromArray(np.ascontiguousarray(array.T))  # ITK arrays are indexed (z, y, x)
    spacing = np.linalg.norm(steps, axis=0)
    itk.SetSpacing([float(s) for s in spacing])
    itk.SetOrigin([float(o) for o in origin])
    itk.SetDirection([float(d) for d in (steps / spacing).ravel()])
    return itk


def from_sitk(itk: sitk.Image, like: MedicalImage) -> MedicalImage:
    """A SimpleITK image on ``like``'s grid back as a :class:`MedicalImage` (``like``'s modality and tags)."""
    array = sitk.GetArrayFromImage(itk).T
    if array.shape != like.spatial_shape:
        raise MedlearnError(f"an ITK image of shape {array.shape} is not on the grid {like.spatial_shape}")
    return image_from_affine(
        np.ascontiguousarray(array)[None], like.affine.copy(), modality=like.modality, tags=dict(like.tags)
    )


def displacement_field(transform: sitk.Transform, reference: MedicalImage) -> MedicalImage:
    """``transform`` sampled on ``reference``'s grid as a displacement field in mm, RAS world axes, one channel per
    in-plane axis (``(3, i, j, k)`` or ``(2, i, j)``): what :func:`medlearn.io.warp.warp` and NIfTI users read."""
    converter = sitk.TransformToDisplacementFieldFilter()
    converter.SetReferenceImage(to_sitk(reference))
    converter.SetOutputPixelType(sitk.sitkVectorFloat64)
    vectors = sitk.GetArrayFromImage(converter.Execute(transform))  # (z, y, x, d) in LPS
    ndim = reference.spatial_ndim
    field = np.moveaxis(vectors, -1, 0).transpose(0, *range(ndim, 0, -1))  # (d, i, j[, k])
    field = field * np.diag(FLIP)[:ndim].reshape(-1, *([1] * ndim))
    return image_from_affine(field.astype(np.float32), reference.affine.copy(), modality="OT")


def transform_points(transform: sitk.Transform, world: np.ndarray, plane: MedicalImage | None = None) -> np.ndarray:
    """World points ``(n, 3)`` (mm, RAS) of the fixed image mapped by ``transform`` into the moving image. For a 2D
    registration (``plane`` the fixed 2D image) x and y are mapped and z is kept."""
    points = np.asarray(world, dtype=np.float64).reshape(-1, 3)
    lps = points @ FLIP
    ndim = 2 if plane is not None and plane.spatial_ndim == 2 else 3
    moved = np.array([transform.TransformPoint(tuple(float(v) for v in p[:ndim])) for p in lps]).reshape(-1, ndim)
    out = lps.copy()
    out[:, :ndim] = moved
    return out @ FLIP


def resample_like(
    moving: MedicalImage, fixed: MedicalImage, transform: sitk.Transform, *, labels: bool = False
) -> MedicalImage:
    """``moving`` resampled onto ``fixed``'s grid through ``transform`` (linear; nearest neighbour for label maps,
    which keep their values); every channel alike; outside the moving image 0."""
    reference = to_sitk(fixed)
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    dtype = np.int32 if labels else np.float32
    channels = [
        sitk.GetArrayFromImage(
            sitk.Resample(to_sitk(moving, c, dtype=dtype), reference, transform, interpolator, 0.0)
        ).T
        for c in range(moving.channels)
    ]
    array = np.stack(channels).astype(moving.array.dtype if labels else np.float32)
    return image_from_affine(array, fixed.affine.copy(), modality=moving.modality, tags=dict(moving.tags))


def field_transform(field: MedicalImage) -> sitk.Transform:
    """A displacement field (mm, RAS world axes, one channel per in-plane axis, on its image's grid: what
    :func:`displacement_field` returns) as an ITK displacement-field transform (the inverse conversion). Outside
    the field's grid ITK takes the displacement as zero."""
    ndim = field.spatial_ndim
    if field.channels != ndim:
        raise MedlearnError(f"a {ndim}D displacement field needs {ndim} channels, this one has {field.channels}")
    vectors = np.asarray(field.array, np.float64) * np.diag(FLIP)[:ndim].reshape(-1, *([1] * ndim))
    array = np.moveaxis(vectors.transpose(0, *range(ndim, 0, -1)), 0, -1)  # (z, y, x, d) in LPS
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=True)
    geometry = to_sitk(field)
    image.SetSpacing(geometry.GetSpacing())
    image.SetOrigin(geometry.GetOrigin())
    image.SetDirection(geometry.GetDirection())
    return sitk.DisplacementFieldTransform(image)


def compose(first: sitk.Transform, then: sitk.Transform | None) -> sitk.Transform:
    """The transform that applies ``first`` and then ``then`` to a point (ITK composites apply their last transform
    first)."""
    if then is None:
        return first
    composite = sitk.CompositeTransform(then.GetDimension())
    composite.AddTransform(then)
    composite.AddTransform(first)
    return composite
