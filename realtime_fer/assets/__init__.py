"""Data shipped with the package: the reference face, the mesh's mirror map, the mean neutral
face, the region table and the default model bundle."""

from __future__ import annotations

from importlib import resources

import numpy as np
import numpy.typing  # noqa: F401 - for the DTypeLike annotation


def load_array(name: str, shape: tuple[int, ...], dtype: np.typing.DTypeLike) -> np.ndarray:
    """The ``.npy`` asset ``name`` as ``dtype``, checked to have ``shape``.

    Raises:
        RuntimeError: the file has another shape (a broken installation).
    """
    with resources.files(__name__).joinpath(name).open("rb") as fh:
        arr = np.load(fh).astype(dtype)
    if arr.shape != shape:
        raise RuntimeError(f"package asset {name} has shape {arr.shape}, expected {shape}")
    return arr
