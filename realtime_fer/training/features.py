"""Pooled window features of a labelled dataset, ready for the classifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.data.motion import MotionBank, MotionOptions, blendshape_mirror
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.features.windows import WindowOptions
from realtime_fer.landmarks.detector import NUM_BLENDSHAPES, NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import mirror_normalized
from realtime_fer.models.network import pool


@dataclass
class PooledSet:
    """Pooled features of every window of a set of samples."""

    features: np.ndarray
    """(N, len(pooling) * (3 * 468 + n_blendshapes)) float32, over the full face mesh."""
    owner: np.ndarray
    """(N,) index of each window's sample."""
    pooling: tuple[str, ...]
    n_blendshapes: int = 0
    """Blendshape scores pooled after the landmarks (0: none)."""

    def columns(self, landmarks: Sequence[int]) -> np.ndarray:
        """Column indices of ``features`` that belong to ``landmarks`` (in that order), followed
        by every blendshape column (a model of a landmark subset reads all blendshapes)."""
        idx = np.asarray(landmarks, np.int64)
        per_part = (3 * idx[:, None] + np.arange(3)[None, :]).reshape(-1)
        width = 3 * NUM_MESH_LANDMARKS
        cols = [k * width + per_part for k in range(len(self.pooling))]
        if self.n_blendshapes:
            cols.append(len(self.pooling) * width + np.arange(len(self.pooling) * self.n_blendshapes))
        return np.concatenate(cols)

    def subset(self, landmarks: Sequence[int] | None) -> np.ndarray:
        """Features restricted to ``landmarks`` (all when None)."""
        return self.features if landmarks is None else self.features[:, self.columns(landmarks)]


def pooled_set(
    samples: Sequence[ExtractedSample],
    window: WindowOptions,
    pooling: Sequence[str],
    *,
    jitter: bool,
    seed: int = 0,
    max_windows: int | None = None,
    mirror: bool = False,
    motion: tuple[MotionBank, MotionOptions] | None = None,
    blendshapes: bool = False,
) -> PooledSet:
    """Build the windows of ``samples`` chunk by chunk and keep only their pooled features
    (pooling is per landmark, so a landmark subset is a column subset of these).

    With ``mirror``, every window is followed by its horizontal mirror image (training
    augmentation; both belong to the same sample). ``motion`` sets still frames in real talking
    motion (see :func:`realtime_fer.data.windows.sample_windows`); ``blendshapes`` pools the
    windows' blendshape scores after the landmarks."""
    feats, owners = [], []
    for chunk in iter_window_chunks(samples, window, jitter=jitter, seed=seed, max_windows=max_windows, motion=motion, blendshapes=blendshapes):
        wins, own = chunk[0], chunk[1]
        blend = chunk[2] if blendshapes else None
        feats.append(pool(wins, tuple(pooling), blendshapes=blend))
        owners.append(own)
        if mirror:
            feats.append(pool(mirror_normalized(wins), tuple(pooling), blendshapes=None if blend is None else blend[:, :, blendshape_mirror()]))
            owners.append(own)
    n_blend = NUM_BLENDSHAPES if blendshapes else 0
    width = len(pooling) * (3 * NUM_MESH_LANDMARKS + n_blend)
    return PooledSet(
        features=np.concatenate(feats) if feats else np.zeros((0, width), np.float32),
        owner=np.concatenate(owners) if owners else np.zeros(0, np.int64),
        pooling=tuple(pooling),
        n_blendshapes=n_blend,
    )
