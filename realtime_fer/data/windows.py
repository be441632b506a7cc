"""Turning extracted samples into classifier windows (see :mod:`realtime_fer.features.windows`).

Images become one still window; videos and frame sequences become sliding windows; sequences
shorter than a window (CK+'s three apex frames) contribute each detected frame as a still.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.data.motion import MotionBank, MotionOptions, moving_windows
from realtime_fer.features.windows import WindowOptions, sliding_windows, still_windows
from realtime_fer.landmarks.normalize import normalize_landmarks


def normalized_frames(sample: ExtractedSample) -> tuple[np.ndarray, np.ndarray]:
    """(F, 468, 3) normalised landmarks (NaN where no face) and the (F,) detection mask."""
    det = sample.detected
    out = np.full((sample.n_frames, 468, 3), np.nan, np.float32)
    if det.any():
        out[det] = normalize_landmarks(sample.landmarks[det])
    return out, det


def sample_windows(
    sample: ExtractedSample,
    options: WindowOptions,
    *,
    jitter: bool,
    rng: np.random.Generator | None = None,
    max_windows: int | None = None,
    motion: tuple[MotionBank, MotionOptions] | None = None,
) -> np.ndarray:
    """The windows (W, T, 468, 3) of one sample; W may be 0 when no face was found.

    Args:
        jitter: add the still-frame jitter of ``options`` (training) or not (evaluation).
        max_windows: cap on windows from one video (evenly spaced), so long clips do not
            dominate a training set.
        motion: a bank of real talking motion and how to use it: still frames become moving
            windows (:func:`realtime_fer.data.motion.moving_windows`) instead of jittered ones.
    """
    frames, det = normalized_frames(sample)
    t = options.length
    amount = options.still_jitter if jitter else 0.0

    def stills(faces: np.ndarray) -> np.ndarray:
        if motion is not None:
            return moving_windows(faces, motion[0], t, rng if rng is not None else np.random.default_rng(), motion[1], amount)
        return still_windows(faces, t, amount, rng)

    if sample.ref.kind == "image" or sample.n_frames == 1:
        return stills(frames[det])
    wins, _ = sliding_windows(frames, det, t, options.hop)
    if len(wins) == 0:  # shorter than a window: every detected frame is a still
        wins = stills(frames[det])
    if max_windows is not None and len(wins) > max_windows:
        wins = wins[np.linspace(0, len(wins) - 1, max_windows).round().astype(int)]
    return wins


def video_windows(sample: ExtractedSample, options: WindowOptions) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows of a video or sequence without augmentation, with the index of each
    window's **last** frame (the frame at which a live stream would score it). Clips shorter
    than a window give each detected frame as a still, ending at that frame."""
    frames, det = normalized_frames(sample)
    t = options.length
    wins, starts = sliding_windows(frames, det, t, options.hop)
    if len(wins) == 0 and sample.n_frames < t:
        idx = np.flatnonzero(det)
        return still_windows(frames[det], t), idx.astype(np.int64)
    return wins, starts + t - 1


def iter_window_chunks(
    samples: Sequence[ExtractedSample],
    options: WindowOptions,
    *,
    jitter: bool,
    seed: int = 0,
    max_windows: int | None = None,
    chunk: int = 2048,
    motion: tuple[MotionBank, MotionOptions] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(windows, owner)`` chunks: windows (n, T, 468, 3) and, for each, the index of
    its sample in ``samples``. Memory stays bounded by ``chunk`` windows. ``motion``: see
    :func:`sample_windows`."""
    rng = np.random.default_rng(seed)
    buf: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    size = 0
    for i, s in enumerate(samples):
        w = sample_windows(s, options, jitter=jitter, rng=rng, max_windows=max_windows, motion=motion)
        if len(w) == 0:
            continue
        buf.append(w)
        owners.append(np.full(len(w), i, np.int64))
        size += len(w)
        if size >= chunk:
            yield np.concatenate(buf), np.concatenate(owners)
            buf, owners, size = [], [], 0
    if buf:
        yield np.concatenate(buf), np.concatenate(owners)
