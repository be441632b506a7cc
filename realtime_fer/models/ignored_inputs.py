"""Blendshape categories a model must not read.

Some of MediaPipe's 52 categories describe where the eyes look (``eyeLook*``), not what the
face expresses, and they differ between the training photos and video (RAF-DB's neutral photos
look down, ``eyeLookDown`` 0.26, against 0.06-0.11 in video: docs/video.md). A model can be
made blind to chosen categories at no cost: their columns of the pooled input (every pooling
part) are projected off before fitting, with the speech subspace, and the projection is folded
into the first layer (:func:`realtime_fer.models.speech_subspace.fold_projection`). The
network then gives those inputs zero weight: its score and its attributions do not depend on
them, and the ONNX graph is unchanged. Tried for gaze in session 19 and not kept: the
clips and RAF-DB disgust lost more than the photos' gaze offset cost (docs/video.md).

Projected off, those columns are constant in training, so their fitted standard deviation is
the floor (1e-6), which would multiply any rounding left in their folded weights by a million
on a live face: :func:`ignore_columns` sets their weights to exactly zero and their
standardisation to (0, 1) after the fold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES
from realtime_fer.models.network import Network, blendshape_part

__all__ = ["GAZE_BLENDSHAPES", "blendshape_indices", "column_basis", "ignore_columns", "ignored_blendshape_basis", "ignored_columns"]

#: The eight gaze categories: where the eyes look, not an expression.
GAZE_BLENDSHAPES: tuple[str, ...] = tuple(n for n in BLENDSHAPE_NAMES if n.startswith("eyeLook"))


def blendshape_indices(names: Sequence[str]) -> list[int]:
    """Positions of blendshape category ``names`` in :data:`BLENDSHAPE_NAMES` (``gaze`` stands
    for the eight :data:`GAZE_BLENDSHAPES`), sorted, each once.

    Raises:
        ValueError: an unknown name.
    """
    out: set[int] = set()
    for name in names:
        for n in GAZE_BLENDSHAPES if name == "gaze" else (name,):
            if n not in BLENDSHAPE_NAMES:
                raise ValueError(f"unknown blendshape {n!r}; MediaPipe's categories are {', '.join(BLENDSHAPE_NAMES)} (or 'gaze')")
            out.add(BLENDSHAPE_NAMES.index(n))
    return sorted(out)


def ignored_columns(n_landmarks: int, pooling: Sequence[str], n_blendshapes: int, indices: Sequence[int]) -> np.ndarray:
    """Positions in the pooled input of blendshape categories ``indices``, in every pooling part
    (the layout of :func:`realtime_fer.models.network.pool`: all landmark parts, then the
    blendshape parts); empty without blendshapes or indices."""
    nb = int(n_blendshapes)
    idx = sorted({int(i) for i in indices})
    if not nb or not idx:
        return np.zeros(0, np.int64)
    if idx[0] < 0 or idx[-1] >= nb:
        raise ValueError(f"blendshape index out of range 0..{nb - 1}: {idx}")
    return np.array([blendshape_part(n_landmarks, len(pooling), nb, k).start + i for k in range(len(pooling)) for i in idx], np.int64)


def column_basis(dim: int, columns: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis (dim, k) of the unit vectors of ``columns``; None when there are none."""
    cols = np.asarray(columns, np.int64)
    if not cols.size:
        return None
    basis = np.zeros((int(dim), len(cols)))
    basis[cols, np.arange(len(cols))] = 1.0
    return basis


def ignored_blendshape_basis(n_landmarks: int, pooling: Sequence[str], n_blendshapes: int, indices: Sequence[int]) -> np.ndarray | None:
    """Orthonormal basis (D, k) of the pooled input's columns of blendshape categories
    ``indices`` (:func:`ignored_columns`); None when there is nothing to ignore."""
    dim = len(pooling) * (3 * int(n_landmarks) + int(n_blendshapes))
    return column_basis(dim, ignored_columns(n_landmarks, pooling, n_blendshapes, indices))


def ignore_columns(net: Network, columns: np.ndarray) -> Network:
    """``net`` with pooled inputs ``columns`` read by nothing: their first-layer and direct-link
    weights exactly zero, their standardisation (0, 1). For a network fitted on features
    projected off those columns (where they were constant), the scores on training data do
    not change."""
    cols = np.asarray(columns, np.int64)
    if not cols.size:
        return net
    mean, std = np.array(net.mean, np.float32), np.array(net.std, np.float32)
    mean[cols], std[cols] = 0.0, 1.0
    layers = list(net.layers)
    if layers:
        w1 = np.array(layers[0][0], np.float32)
        w1[cols] = 0.0
        layers[0] = (w1, layers[0][1])
    head_w = np.array(net.head_w, np.float32)
    direct = net.direct_link()
    if direct is not None:
        block = head_w[direct]
        block[cols] = 0.0
        head_w[direct] = block
    return replace(net, mean=mean, std=std, layers=layers, head_w=head_w)
