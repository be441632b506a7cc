"""Turning extracted samples into classifier windows (see :mod:`realtime_fer.features.windows`).

Images become one still window; videos and frame sequences become sliding windows; sequences
shorter than a window (CK+'s three apex frames) contribute each detected frame as a still.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.errors import DataError
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
    blendshapes: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The windows (W, T, 468, 3) of one sample; W may be 0 when no face was found.

    Args:
        jitter: add the still-frame jitter of ``options`` (training) or not (evaluation).
        max_windows: cap on windows from one video (evenly spaced), so long clips do not
            dominate a training set.
        motion: a bank of real talking motion and how to use it: still frames become moving
            windows (:func:`realtime_fer.data.motion.moving_windows`) instead of jittered ones.
        blendshapes: also return the windows' blendshape scores (W, T, 52): ``(windows,
            blendshape_windows)`` (the sample must have been extracted with blendshapes).
    """
    frames, det = normalized_frames(sample)
    t = options.length
    amount = options.still_jitter if jitter else 0.0
    blend = _blendshapes_of(sample) if blendshapes else None

    def stills(idx: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        b = blend[idx] if blend is not None else None
        if motion is not None:
            return moving_windows(frames[idx], motion[0], t, rng if rng is not None else np.random.default_rng(), motion[1], amount, blendshapes=b)
        w = still_windows(frames[idx], t, amount, rng)
        return w if b is None else (w, np.repeat(b[:, None], t, axis=1))

    if sample.ref.kind == "image" or sample.n_frames == 1:
        return stills(np.flatnonzero(det))
    wins, starts = sliding_windows(frames, det, t, options.hop)
    if len(wins) == 0:  # shorter than a window: every detected frame is a still
        return stills(np.flatnonzero(det))
    keep = np.arange(len(wins))
    if max_windows is not None and len(wins) > max_windows:
        keep = np.linspace(0, len(wins) - 1, max_windows).round().astype(int)
    if blend is None:
        return wins[keep]
    return wins[keep], blend[starts[keep][:, None] + np.arange(t)[None, :]]


def _blendshapes_of(sample: ExtractedSample) -> np.ndarray:
    if sample.blendshapes is None:
        raise DataError(f"{sample.ref.path}: no blendshapes in its landmark cache entry (extract with blendshapes on)")
    return np.asarray(sample.blendshapes, np.float32)


def video_windows(sample: ExtractedSample, options: WindowOptions, *, blendshapes: bool = False) -> tuple[np.ndarray, ...]:
    """Sliding windows of a video or sequence without augmentation, with the index of each
    window's **last** frame (the frame at which a live stream would score it): ``(windows,
    ends)``, or with ``blendshapes`` ``(windows, ends, blendshape_windows)``. Clips shorter
    than a window give each detected frame as a still, ending at that frame."""
    frames, det = normalized_frames(sample)
    blend = _blendshapes_of(sample) if blendshapes else None
    t = options.length
    wins, starts = sliding_windows(frames, det, t, options.hop)
    if len(wins) == 0 and sample.n_frames < t:
        idx = np.flatnonzero(det)
        out = (still_windows(frames[det], t), idx.astype(np.int64))
        return out if blend is None else out + (np.repeat(blend[idx][:, None], t, axis=1),)
    out = (wins, starts + t - 1)
    return out if blend is None else out + (blend[starts[:, None] + np.arange(t)[None, :]],)


def iter_window_chunks(
    samples: Sequence[ExtractedSample],
    options: WindowOptions,
    *,
    jitter: bool,
    seed: int = 0,
    max_windows: int | None = None,
    chunk: int = 2048,
    motion: tuple[MotionBank, MotionOptions] | None = None,
    blendshapes: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(windows, owner)`` chunks: windows (n, T, 468, 3) and, for each, the index of
    its sample in ``samples``; with ``blendshapes``, ``(windows, owner, blendshape_windows)``.
    Memory stays bounded by ``chunk`` windows. ``motion``: see :func:`sample_windows`."""
    rng = np.random.default_rng(seed)
    buf: list[np.ndarray] = []
    bbuf: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    size = 0

    def flush() -> tuple[np.ndarray, ...]:
        out = (np.concatenate(buf), np.concatenate(owners))
        return out + (np.concatenate(bbuf),) if blendshapes else out

    for i, s in enumerate(samples):
        got = sample_windows(s, options, jitter=jitter, rng=rng, max_windows=max_windows, motion=motion, blendshapes=blendshapes)
        w, b = got if blendshapes else (got, None)
        if len(w) == 0:
            continue
        buf.append(w)
        if b is not None:
            bbuf.append(b)
        owners.append(np.full(len(w), i, np.int64))
        size += len(w)
        if size >= chunk:
            yield flush()
            buf, bbuf, owners, size = [], [], [], 0
    if buf:
        yield flush()
