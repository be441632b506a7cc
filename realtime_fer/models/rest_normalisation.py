"""Resting-face normalisation: the models read a face relative to its own predicted resting face.

On people the models have never seen, a clip often goes nearly entirely to one label: the
person's face shape at rest (a wide mouth, low brows) reads as an expression. The landmarks
that expressions hardly move (the face outline, the nose bridge, the eye corners) tell a
person's face shape, and :class:`realtime_fer.explain.resting.RestingFacePredictor` predicts
the whole resting face from them (a ridge regression fitted on RAF-DB's neutral faces). Resting-
face normalisation subtracts what that prediction says about the person from each window's
pooled ``mean`` shape::

    x'_mean = x_mean - (r(x) - n) = x_mean - (x_S - n_S) W

where ``r(x)`` is the predicted resting face of the model's landmarks, ``n`` the mean neutral
face, ``S`` the stable coordinates among the model's landmarks and ``W`` the regression weights
from them to all of the model's coordinates. The other pooled parts (``std``, blendshapes) are
untouched.

The map is affine in the pooled input (``x' = x A + c``), so :func:`fold_affine` folds it (and
any projection applied before it) into the fitted network's first hidden layer, direct link and
biases: the exported model reads the raw window like any other, costs nothing more per frame,
and explanations and the ONNX export stay as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from realtime_fer.explain.resting import RestingFacePredictor, RestingFaceStatistics
from realtime_fer.models.half import round_to_half
from realtime_fer.models.network import Network

log = logging.getLogger(__name__)


@dataclass
class RestNormalisationOptions:
    """YAML ``model.rest_normalisation`` of the training config."""

    enabled: bool = False
    n_stable: int = 200
    """The predictors are the ``n_stable`` most stable landmarks of the mesh, those among a
    model's landmarks (:class:`~realtime_fer.explain.resting.RestingFacePredictor`)."""
    ridge: float = 0.01
    """Ridge ``lambda`` of the regression, relative to the predictors' mean variance."""
    min_stable: int = 5
    """A model with fewer stable landmarks than this among its own is not normalised (logged)."""

    def __post_init__(self) -> None:
        if self.n_stable < 1 or not self.ridge > 0 or self.min_stable < 1:
            raise ValueError("rest_normalisation.n_stable and min_stable must be >= 1 and ridge > 0")


@dataclass(frozen=True)
class RestMap:
    """``x' = x A + c`` on a model's pooled features: ``x'[:, mean_cols] -= (x[:, stable_cols] - stable_mean) W``."""

    dim: int
    """Width D of the pooled features."""
    stable_cols: np.ndarray
    """(3S,) columns of the stable landmarks' coordinates in the pooled ``mean`` part."""
    mean_cols: np.ndarray
    """(3L,) columns of the pooled ``mean`` part."""
    weights: np.ndarray
    """(3S, 3L) float64 regression weights ``W``."""
    stable_mean: np.ndarray
    """(3S,) the mean neutral face on the stable coordinates ``n_S``."""

    def apply(self, features: np.ndarray) -> np.ndarray:
        """The normalised features (float32, a new array)."""
        x = np.array(features, np.float32)
        shift = (np.asarray(x[:, self.stable_cols], np.float64) - self.stable_mean) @ self.weights
        x[:, self.mean_cols] -= shift.astype(np.float32)
        return x

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``(A (D, D), c (D,))`` in float64."""
        a = np.eye(self.dim)
        a[np.ix_(self.stable_cols, self.mean_cols)] -= self.weights
        c = np.zeros(self.dim)
        c[self.mean_cols] = self.stable_mean @ self.weights
        return a, c


def rest_map(
    landmarks: Sequence[int],
    pooling: Sequence[str],
    n_blendshapes: int,
    options: RestNormalisationOptions,
    stats: RestingFaceStatistics | None = None,
) -> RestMap | None:
    """The normalisation of a model on ``landmarks`` (mesh indices, in the model's order) with
    ``pooling`` and ``n_blendshapes``; None when it is disabled, the pooling has no ``mean``,
    or fewer than ``options.min_stable`` of the ``n_stable`` most stable landmarks are among
    ``landmarks`` (that model is then fitted without normalisation; logged)."""
    if not options.enabled or "mean" not in pooling or not len(landmarks):
        return None
    try:
        pred = RestingFacePredictor(landmarks, options.n_stable, options.ridge, stats)
    except ValueError:
        n = 0
    else:
        n = len(pred.stable)
    if n < options.min_stable:
        log.warning("rest normalisation: the model on %d landmarks has %d of the %d most stable ones (need %d); not normalised",
                    len(landmarks), n, options.n_stable, options.min_stable)
        return None
    width = 3 * len(landmarks)
    part = list(pooling).index("mean") * width
    position = {int(m): i for i, m in enumerate(landmarks)}
    pos = np.array([position[int(m)] for m in pred.stable], np.int64)
    stable_cols = part + (3 * pos[:, None] + np.arange(3)[None, :]).reshape(-1)
    dim = len(pooling) * (width + n_blendshapes)
    log.info("rest normalisation: the model on %d landmarks reads %d stable ones", len(landmarks), n)
    return RestMap(dim, stable_cols, np.arange(part, part + width), np.asarray(pred.weights, np.float64),
                   np.asarray(pred.mean_stable, np.float64))


def compose(basis: np.ndarray | None, a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The affine map ``x -> (x - x B B^T) A + c``: a projection off ``basis`` (None: none)
    followed by ``x A + c``."""
    if basis is None:
        return a, c
    b = np.asarray(basis, np.float64)
    return a - b @ (b.T @ a), c


def fold_affine(net: Network, a: np.ndarray, c: np.ndarray, input_mean: np.ndarray, input_std: np.ndarray, half: bool = False) -> Network:
    """The network that computes, on raw pooled features ``x``, what ``net`` (fitted on
    ``x A + c``) computes on transformed ones.

    ``net`` reads ``z = (x A + c - mu) / sigma``. With the returned network's standardisation
    ``m = input_mean``, ``s = input_std`` (the raw training features'), ``z = ((x - m) / s) G + e``
    where ``G = diag(s) A diag(1 / sigma)`` and ``e = (m A + c - mu) / sigma`` (zero when ``m``
    is the raw mean of the same rows ``mu`` was taken from, up to rounding): ``G`` is folded into
    the first hidden layer's weights and the direct link's head weights, ``e`` into the first
    layer's bias and the head's bias, so the result is exact. ``half``: round the folded first-
    layer weights to float16-representable values (as :func:`fold_projection` does).
    """
    sigma = np.asarray(net.std, np.float64)
    m = np.asarray(input_mean, np.float64)
    s = np.asarray(input_std, np.float64)
    a = np.asarray(a, np.float64)
    g = (s[:, None] * a) / sigma[None, :]
    e = (m @ a + np.asarray(c, np.float64) - np.asarray(net.mean, np.float64)) / sigma
    layers = list(net.layers)
    if layers:
        w, b = layers[0]
        w = np.asarray(w, np.float64)
        w1 = (g @ w).astype(np.float32)
        if half:
            w1 = round_to_half(w1)
        layers[0] = (w1, (np.asarray(b, np.float64) + e @ w).astype(np.float32))
    head_w = np.asarray(net.head_w, np.float32).copy()
    head_b = float(net.head_b)
    direct = net.direct_link()
    if direct is not None:
        h = np.asarray(net.head_w, np.float64)[direct]
        head_w[direct] = (g @ h).astype(np.float32)
        head_b += float(e @ h)
    return replace(net, mean=m.astype(np.float32), std=s.astype(np.float32), layers=layers, head_w=head_w, head_b=head_b)
