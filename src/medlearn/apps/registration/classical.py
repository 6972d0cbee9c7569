"""Classical registration with SimpleITK: the baselines a learned model must beat, and its initialisation.

Methods (``medlearn register methods``): ``rigid`` and ``affine`` (a moments-centred start, then a multi-resolution
gradient descent), ``bspline`` (affine first, then a cubic B-spline grid of ``bspline_spacing_mm`` on top) and
``demons`` (affine first, then fast symmetric-forces demons on intensities matched by histogram; one contrast
only). Metrics: Mattes mutual information (default: works across contrasts), correlation or mean squares (one
contrast). Every method is multi-resolution (shrink 4, 2, 1 with Gaussian smoothing 2, 1, 0 voxels) and seeded,
so a rerun gives the same transform.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from medlearn.errors import MedlearnError, NonFiniteImageError
from medlearn.io.image import MedicalImage
from medlearn.io.itk import to_sitk

METHODS: dict[str, str] = {
    "rigid": "rotation + translation (moments-centred start), multi-resolution gradient descent",
    "affine": "12 (3D) / 6 (2D) parameters after the same start",
    "bspline": "affine, then a cubic B-spline grid (40 mm control points) on top",
    "demons": "affine, then fast symmetric-forces demons (one contrast: intensities histogram-matched)",
}
METRICS = ("mattes", "correlation", "meansquares")
SHRINK, SMOOTH = (4, 2, 1), (2.0, 1.0, 0.0)


@dataclass(frozen=True)
class ClassicalSettings:
    method: str = "affine"
    metric: str = "mattes"
    iterations: int = 200
    bins: int = 32
    sampling: float = 0.25
    bspline_spacing_mm: float = 40.0
    demons_iterations: int = 100
    demons_smoothing: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MedlearnError(f"unknown registration method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.metric not in METRICS:
            raise MedlearnError(f"unknown similarity metric {self.metric!r}; choose one of {', '.join(METRICS)}")


@dataclass
class RegistrationResult:
    """The transform (fixed world point -> moving world point, ITK/LPS), its final metric value and the time."""

    transform: sitk.Transform
    metric_value: float
    seconds: float
    method: str


#: ``(fixed, moving, fixed_mask or None) -> result``: what ``register pair`` and ``register evaluate`` call, a
#: classical method (:func:`classical_registerer`) or a trained model (``LearnedRegistration``).
Registerer = Callable[[MedicalImage, MedicalImage, "MedicalImage | None"], RegistrationResult]


def classical_registerer(settings: ClassicalSettings) -> Registerer:
    def run(fixed: MedicalImage, moving: MedicalImage, mask: MedicalImage | None = None) -> RegistrationResult:
        return register(fixed, moving, settings, fixed_mask=mask)

    run.name = f"{settings.method} ({settings.metric})"  # what tables call it, as a trained model's ``name``
    return run


def register(
    fixed: MedicalImage, moving: MedicalImage, settings: ClassicalSettings, *, fixed_mask: MedicalImage | None = None
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` (first channels) with ``settings.method``."""
    if fixed.spatial_ndim != moving.spatial_ndim:
        raise MedlearnError(
            f"the fixed image is {fixed.spatial_ndim}D and the moving one {moving.spatial_ndim}D", moving.source
        )
    started = time.perf_counter()
    fixed_itk, moving_itk = _normalised(fixed), _normalised(moving)
    mask = None
    if fixed_mask is not None:
        if not np.any(fixed_mask.array):
            raise MedlearnError("the fixed-image mask is empty: no voxel would count", fixed_mask.source)
        mask = to_sitk(fixed_mask, dtype=np.uint8) > 0
    linear_kind = "rigid" if settings.method == "rigid" else "affine"
    try:
        linear, value = _linear(fixed_itk, moving_itk, linear_kind, settings, mask)
        transform: sitk.Transform = linear
        if settings.method == "bspline":
            transform, value = _bspline(fixed_itk, moving_itk, linear, settings, mask)
        elif settings.method == "demons":
            transform, value = _demons(fixed_itk, moving_itk, linear, settings)
    except RuntimeError as error:  # ITK's exceptions: e.g. no sample of the fixed image maps into the moving one
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise MedlearnError(
            f"{settings.method} registration failed ({reason}); do the images overlap once their centres are aligned?",
            moving.source,
        ) from None
    return RegistrationResult(transform, float(value), time.perf_counter() - started, settings.method)


def _normalised(image: MedicalImage) -> sitk.Image:
    """First channel, float32, scaled to [0, 1] by its 0.5-99.5 percentiles: optimiser steps mean the same for any
    intensity unit."""
    if not np.isfinite(image.array[0]).all():
        raise NonFiniteImageError("image holds NaN or infinite values", image.source)
    itk = to_sitk(image)
    values = sitk.GetArrayViewFromImage(itk)
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        raise MedlearnError("the image is constant: nothing to register", image.source)
    return sitk.Clamp((itk - float(low)) / float(high - low), sitk.sitkFloat32, 0.0, 1.0)


def _method(fixed: sitk.Image, settings: ClassicalSettings, mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    if settings.metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    elif settings.metric == "correlation":
        method.SetMetricAsCorrelation()
    else:
        method.SetMetricAsMeanSquares()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(SHRINK))
    method.SetSmoothingSigmasPerLevel(list(SMOOTH))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return method


def _linear(
    fixed: sitk.Image, moving: sitk.Image, kind: str, settings: ClassicalSettings, mask: sitk.Image | None
) -> tuple[sitk.Transform, float]:
    dimension = fixed.GetDimension()
    if kind == "rigid":
        start = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
    else:
        start = sitk.AffineTransform(dimension)
    start = sitk.CenteredTransformInitializer(fixed, moving, start, sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = _method(fixed, settings, mask)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=settings.iterations, gradientMagnitudeTolerance=1e-8
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(start, inPlace=False)
    transform = method.Execute(fixed, moving)
    return _unwrap(transform), method.GetMetricValue()


def _bspline(
    fixed: sitk.Image, moving: sitk.Image, linear: sitk.Transform, settings: ClassicalSettings, mask
) -> tuple[sitk.Transform, float]:
    extent = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
    mesh = [max(1, int(round(e / settings.bspline_spacing_mm))) for e in extent]
    grid = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    method = _method(fixed, settings, mask)
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings.iterations)
    method.SetMovingInitialTransform(linear)
    method.SetInitialTransform(grid, inPlace=True)
    method.Execute(fixed, moving)
    return sitk.CompositeTransform([linear, grid]), method.GetMetricValue()  # the grid acts first, then the affine


def _demons(
    fixed: sitk.Image, moving: sitk.Image, linear: sitk.Transform, settings: ClassicalSettings
) -> tuple[sitk.Transform, float]:
    aligned = sitk.Resample(moving, fixed, linear, sitk.sitkLinear, 0.0)
    matched = sitk.HistogramMatching(aligned, fixed, numberOfHistogramLevels=256, numberOfMatchPoints=15)
    field = None
    for shrink, sigma in zip(SHRINK, SMOOTH, strict=True):  # coarse to fine, each level starting from the last
        factors = [shrink] * fixed.GetDimension()
        level_fixed = sitk.Shrink(sitk.SmoothingRecursiveGaussian(fixed, max(sigma, 0.01)), factors)
        level_moving = sitk.Shrink(sitk.SmoothingRecursiveGaussian(matched, max(sigma, 0.01)), factors)
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        demons.SetNumberOfIterations(settings.demons_iterations)
        demons.SetStandardDeviations(settings.demons_smoothing)
        if field is None:
            field = demons.Execute(level_fixed, level_moving)
        else:
            start = sitk.Resample(field, level_fixed, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
            field = demons.Execute(level_fixed, level_moving, start)
        value = demons.GetMetric()
    full = sitk.Resample(field, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    displacement = sitk.DisplacementFieldTransform(full)
    return sitk.CompositeTransform([linear, displacement]), value  # the demons field acts first


def _unwrap(transform: sitk.Transform) -> sitk.Transform:
    """A composite of one transform (what Execute returns with inPlace=False) as that transform."""
    if isinstance(transform, sitk.CompositeTransform) and transform.GetNumberOfTransforms() == 1:
        return transform.GetNthTransform(0)
    return transform
