"""Half-precision weights kept in single or double precision.

A randomized network draws its random first layer as float16-representable values
(``model.randomized.weight_dtype: float16``), and the exporter stores a float32 initializer in
float16 (cast on load) exactly when every value is representable: half the file, the same
network. Every fold that rewrites a first layer (speech subspace, rest normalisation, the
symmetric twins, the blendshape fusion) rounds its result back onto that grid with
:func:`round_to_half`, and the exporter asks :func:`is_half` before storing a tensor in float16.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["is_half", "round_to_half"]


def round_to_half(values: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """``values`` rounded to the nearest float16 values, returned in ``dtype`` (float32 by
    default; float64 where a fold keeps computing in double precision)."""
    return np.asarray(values).astype(np.float16).astype(dtype)


def is_half(values: np.ndarray) -> bool:
    """Whether every value of a float32 array is float16-representable (so storing it in half
    precision and casting it back on load changes nothing)."""
    arr = np.asarray(values)
    return arr.dtype == np.float32 and bool(np.array_equal(round_to_half(arr), arr))
