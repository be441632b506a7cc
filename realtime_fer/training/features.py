"""Pooled window features of a labelled dataset, ready for the classifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.data.motion import MotionBank, MotionOptions
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.features.windows import WindowOptions
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import mirror_normalized
from realtime_fer.models.network import pool


@dataclass
class PooledSet:
    """Pooled features of every window of a set of samples."""

    features: np.ndarray
    """(N, len(pooling) * 3 * 468) float32, over the full face mesh."""
    owner: np.ndarray
    """(N,) index of each window's sample."""
    pooling: tuple[str, ...]

    def columns(self, landmarks: Sequence[int]) -> np.ndarray:
        """Column indices of ``features`` that belong to ``landmarks`` (in that order)."""
        idx = np.asarray(landmarks, np.int64)
        per_part = (3 * idx[:, None] + np.arange(3)[None, :]).reshape(-1)
        width = 3 * NUM_MESH_LANDMARKS
        return np.concatenate([k * width + per_part for k in range(len(self.pooling))])

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
) -> PooledSet:
    """Build the windows of ``samples`` chunk by chunk and keep only their pooled features
    (pooling is per landmark, so a landmark subset is a column subset of these).

    With ``mirror``, every window is followed by its horizontal mirror image (training
    augmentation; both belong to the same sample). ``motion`` sets still frames in real talking
    motion (see :func:`realtime_fer.data.windows.sample_windows`)."""
    feats, owners = [], []
    for wins, own in iter_window_chunks(samples, window, jitter=jitter, seed=seed, max_windows=max_windows, motion=motion):
        feats.append(pool(wins, tuple(pooling)))
        owners.append(own)
        if mirror:
            feats.append(pool(mirror_normalized(wins), tuple(pooling)))
            owners.append(own)
    width = len(pooling) * 3 * NUM_MESH_LANDMARKS
    return PooledSet(
        features=np.concatenate(feats) if feats else np.zeros((0, width), np.float32),
        owner=np.concatenate(owners) if owners else np.zeros(0, np.int64),
        pooling=tuple(pooling),
    )
