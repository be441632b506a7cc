"""A person's resting face, predicted from the shape of their face: the ``person`` baseline.

Integrated Gradients explains ``F(x) - F(b)``. Against the population's mean neutral face
``b``, the difference ``x - b`` holds the person's face shape as well as their expression, and
the networks turn that shape difference into large region attributions of opposite signs
(docs/faithfulness.md). A person's own neutral face removes it, but a stream sees one only when
the person rests. This module predicts it from the first window on.

Some landmarks hardly move with expression but differ between people (the face outline, the
nose bridge, the eye corners): their **stability** score (``assets/resting_face.npz``,
``tools/build_resting_face.py``) is the variance of the expression labels' mean faces
relative to the variance of neutral faces, per landmark, on RAF-DB train. The ``n_stable``
most stable landmarks of the mesh that a bundle reads are the predictors. The asset also holds
a low-rank covariance of RAF-DB train's 2,397 neutral faces (128 principal components plus
each coordinate's residual variance); from it :class:`RestingFacePredictor` fits, once per
bundle, the ridge regression of the resting face's coordinates on the stable landmarks'::

    r = mean_Y + (x_S - mean_S) W,   W = (C_SS + lambda * tr(C_SS) / d_S * I)^-1 C_SY

where ``C`` is the neutral faces' covariance, ``S`` the stable coordinates and ``Y`` the
predicted ones. Fed with a face that smiles, it returns a face with the same outline, nose and
eyes and the mouth and brows a neutral face of that shape has.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np

from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS

log = logging.getLogger(__name__)

ASSET = "resting_face.npz"


@dataclass(frozen=True)
class RestingFaceStatistics:
    """The content of ``assets/resting_face.npz`` (see the module docstring)."""

    mean: np.ndarray
    """(468, 3) mean neutral face."""
    components: np.ndarray
    """(K, 1404) principal components of neutral faces (x, y, z of each landmark in turn)."""
    variances: np.ndarray
    """(K,) their variances."""
    residual: np.ndarray
    """(1404,) variance of each coordinate not explained by the components."""
    stability: np.ndarray
    """(468,) expression variance / identity variance per landmark (low: stable)."""

    def covariance(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The neutral faces' covariance between coordinates ``rows`` and ``cols``."""
        c = (self.components[:, rows].T * self.variances) @ self.components[:, cols]
        same = rows[:, None] == cols[None, :]
        return c + np.where(same, self.residual[rows][:, None], 0.0)


@functools.lru_cache(maxsize=1)
def resting_face_statistics() -> RestingFaceStatistics:
    """The shipped statistics (RAF-DB train), checked for shape.

    Raises:
        RuntimeError: the asset is missing a field or has other shapes (a broken installation).
    """
    with resources.files("realtime_fer.assets").joinpath(ASSET).open("rb") as fh:
        with np.load(fh, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float64) for k in z.files}
    d = NUM_MESH_LANDMARKS * 3
    try:
        stats = RestingFaceStatistics(arrays["mean"], arrays["components"], arrays["variances"], arrays["residual"], arrays["stability"])
    except KeyError as exc:
        raise RuntimeError(f"package asset {ASSET} lacks {exc.args[0]!r}") from None
    k = len(stats.variances)
    if (stats.mean.shape != (NUM_MESH_LANDMARKS, 3) or stats.components.shape != (k, d) or stats.residual.shape != (d,)
            or stats.stability.shape != (NUM_MESH_LANDMARKS,)):
        raise RuntimeError(f"package asset {ASSET} has unexpected shapes")
    return stats


def _coords(landmarks: np.ndarray) -> np.ndarray:
    return (3 * landmarks[:, None] + np.arange(3)[None, :]).reshape(-1)


class RestingFacePredictor:
    """Predicts a person's resting face on ``targets`` from their face on the stable landmarks.

    Args:
        targets: mesh indices to predict (a bundle's landmark union).
        n_stable: the predictors are the ``n_stable`` most stable landmarks of the mesh, those
            among ``targets``.
        ridge: ``lambda`` of the regression, relative to the mean variance of the predictors.
        stats: the statistics (default: the shipped ones).
        offset: (468, 3) added to the statistics' mean face (a bundle's domain offset: its
            neutral faces are RAF-DB's moved by it).

    Raises:
        ValueError: no stable landmark among ``targets``, or bad arguments.
    """

    def __init__(self, targets: Sequence[int], n_stable: int = 200, ridge: float = 0.01, stats: RestingFaceStatistics | None = None,
                 offset: np.ndarray | None = None) -> None:
        if n_stable < 1 or ridge <= 0:
            raise ValueError("n_stable must be >= 1 and ridge > 0")
        s = stats or resting_face_statistics()
        self.targets = np.asarray(targets, np.int64)
        most_stable = np.argsort(s.stability, kind="stable")[:n_stable]
        self.stable = np.intersect1d(most_stable, self.targets)
        """Mesh indices of the predictors (sorted)."""
        if not len(self.stable):
            raise ValueError(f"none of the {n_stable} most stable landmarks is among the {len(self.targets)} targets")
        xs, ys = _coords(self.stable), _coords(self.targets)
        c_ss = s.covariance(xs, xs)
        c_sy = s.covariance(xs, ys)
        reg = ridge * np.trace(c_ss) / len(xs)
        self.weights = np.linalg.solve(c_ss + reg * np.eye(len(xs)), c_sy).astype(np.float32)
        """(3 S, 3 L) regression weights."""
        self.mean_stable = s.mean[self.stable].reshape(-1).astype(np.float32)
        self.mean_targets = s.mean[self.targets].astype(np.float32)
        """(L, 3) the mean neutral face on the targets."""
        if offset is not None:  # a bundle trained with RAF-DB moved by a domain offset
            off = np.asarray(offset, np.float32).reshape(-1, 3)
            self.mean_stable = self.mean_stable + off[self.stable].reshape(-1)
            self.mean_targets = self.mean_targets + off[self.targets]

    def predict(self, stable_face: np.ndarray) -> np.ndarray:
        """The resting face (L, 3) on the targets given the face (S, 3) on :attr:`stable`."""
        x = np.asarray(stable_face, np.float32).reshape(-1) - self.mean_stable
        return self.mean_targets + (x @ self.weights).reshape(-1, 3)
