"""Arithmetic whose result does not depend on the CPU's SIMD dispatch: the data stages' canonical numbers.

Why: numpy picks its ufunc kernels at run time by CPU feature (``numpy.show_runtime()``; narrowed with
``NPY_DISABLE_CPU_FEATURES``), and so does torch (``ATEN_CPU_CAPABILITY``). The AVX-512 kernels of the
transcendental functions (``np.sin``, ``np.cos``, ``np.exp``, ``np.log``, ``np.tan``, ``np.arctan2`` in float64)
are not correctly rounded and differ from the baseline kernels by up to a few ulp; BLAS kernels (``@`` on
float64, through OpenBLAS, chosen by CPU) may fuse multiply-adds. Measured here: under
``NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR"`` 18 of 100 procedural meshes had other
float64 vertices (last bits; trimesh's primitives evaluate ``np.sin``/``np.cos`` on their angle grids), and a
coordinate that should be 0 came out as ±1e-17, so the written OFF text could read ``-0.000000`` on one CPU
and ``0.000000`` on another. (OpenBLAS, behind trimesh's ``apply_transform``, is narrowed in the tests with
``OPENBLAS_CORETYPE``; the RGB renderer, OSMesa's llvmpipe, gave the same PNGs with
``LP_NATIVE_VECTOR_WIDTH=128`` on 12 meshes × 10 views, and writes uint8 pixels, not floats.)

The rules, used by the code paths of ``synth``, ``sample`` and ``render``:

* **Scalar transcendentals** (:func:`exp`, :func:`log`, :func:`sin`, :func:`cos`, :func:`tan`, and the
  degree forms :func:`sin_deg` / :func:`cos_deg`) are evaluated by Python's :mod:`math` (the C library's
  scalar functions: no numpy or torch dispatch at all) and then rounded to float32. Degree arguments are
  reduced exactly (``fmod``) and the multiples of 90° are exact (cos 90° is 0, not 6e-17).
* **Stored coordinates** are snapped to a fixed binary grid (:func:`snap`, :data:`GRID_BITS`): every value
  is rounded to the nearest multiple of 2**-GRID_BITS with exact operations (scaling by a power of two,
  ``rint``), and ``-0.0`` becomes ``0.0``. A last-bit difference upstream is absorbed by the grid.
* **Norms** of short vectors (:func:`norm3`) are summed in a fixed order in float64 and rounded by the
  correctly rounded square root, never through BLAS.
* **Float32 outputs** (:func:`to_float32`) are computed in float64 and rounded once, ``-0.0`` → ``0.0``.

What is guaranteed: results are identical under every dispatch level whenever the float64 values before
rounding differ only in their last few bits and do not straddle a rounding boundary of the grid / float32.
A straddle needs a float64 value within a few ulp (~1e-15 relative) of the midpoint between two grid
points, so its chance is about 1e-9 per coordinate (well under one in a thousand full runs of the embedded
default's data stages), not zero; if it happens, the stage's md5 differs and CI says so
(``scripts/check_data_hashes.sh``). The C library's own ``math`` functions can still change with its version,
which the lock file (not this module) pins.
"""

from __future__ import annotations

import math

import numpy as np

#: Coordinates of stored meshes are multiples of 2**-GRID_BITS (~9.5e-7, just finer than OFF's 6 decimals).
GRID_BITS = 20


def _f32(x: float) -> float:
    """``x`` rounded to the nearest float32, as a Python float, with -0.0 → 0.0."""
    return float(np.float32(x)) + 0.0


def exp(x: float) -> float:
    """e**x, scalar libm, rounded to float32."""
    return _f32(math.exp(float(x)))


def log(x: float) -> float:
    """Natural logarithm, scalar libm, rounded to float32."""
    return _f32(math.log(float(x)))


def sin(x: float) -> float:
    """sin(x) (radians), scalar libm, rounded to float32."""
    return _f32(math.sin(float(x)))


def cos(x: float) -> float:
    """cos(x) (radians), scalar libm, rounded to float32."""
    return _f32(math.cos(float(x)))


def tan(x: float) -> float:
    """tan(x) (radians), scalar libm, rounded to float32."""
    return _f32(math.tan(float(x)))


def _reduce_deg(deg: float) -> float:
    """``deg`` reduced exactly into [0, 360)."""
    r = math.fmod(float(deg), 360.0)  # fmod is exact
    return r + 360.0 if r < 0 else r


def sin_deg(deg: float) -> float:
    """sin of an angle in degrees: exact at multiples of 90°, else scalar libm rounded to float32."""
    r = _reduce_deg(deg)
    exact = {0.0: 0.0, 90.0: 1.0, 180.0: 0.0, 270.0: -1.0}
    return exact[r] if r in exact else sin(math.radians(r))


def cos_deg(deg: float) -> float:
    """cos of an angle in degrees: exact at multiples of 90°, else scalar libm rounded to float32."""
    r = _reduce_deg(deg)
    exact = {0.0: 1.0, 90.0: 0.0, 180.0: -1.0, 270.0: 0.0}
    return exact[r] if r in exact else cos(math.radians(r))


def snap(values: np.ndarray, bits: int = GRID_BITS) -> np.ndarray:
    """float64 copy of ``values`` rounded to the nearest multiple of 2**-bits (ties to even), -0.0 → 0.0.

    Exact: multiplying by a power of two and ``rint`` introduce no rounding of their own (for
    |values| < 2**(52 - bits), far beyond any mesh coordinate)."""
    v = np.asarray(values, dtype=np.float64)
    return np.ldexp(np.rint(np.ldexp(v, bits)), -bits) + 0.0


def to_float32(values: np.ndarray) -> np.ndarray:
    """float32 copy of ``values`` (rounded once from float64), -0.0 → 0.0."""
    return np.asarray(values, dtype=np.float64).astype(np.float32) + np.float32(0.0)


def norm3(v: np.ndarray) -> float:
    """Euclidean norm of a 3-vector: ``sqrt((x*x + y*y) + z*z)`` in float64, in that order, no BLAS."""
    x, y, z = (float(c) for c in np.asarray(v, dtype=np.float64).reshape(3))
    return math.sqrt((x * x + y * y) + z * z)
