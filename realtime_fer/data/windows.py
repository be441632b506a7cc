"""Turning extracted samples into classifier windows (see :mod:`realtime_fer.features.windows`).

Images become one still window. Videos become windows in source time (:func:`clip_windows`, the
live recognizer's rule: frame ``i`` of a clip is at ``i / fps`` seconds, a window spans
``window.seconds`` resampled by linear interpolation, decisions every ``hop_seconds`` per run
of consecutive detections, partial windows after ``min_seconds``). Frame sequences without a
frame rate take one frame per sample. For training, options without ``seconds`` keep plain
frame windows (the shipped model's recipe), and a clip or sequence with no full window
contributes each detected frame as a still (CK+'s three apex frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import numpy as np

from realtime_fer.data.extract import ExtractedSample
from realtime_fer.errors import DataError
from realtime_fer.data.motion import MotionBank, MotionOptions, moving_windows
from realtime_fer.features.windows import DecisionClock, WindowOptions, interpolation_plan, real_samples, resample, sliding_windows, still_windows
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
    if options.seconds is None:  # legacy frame windows (training configs without window.seconds)
        wins, starts = sliding_windows(frames, det, t, options.hop)
        bwins = None if blend is None or len(wins) == 0 else blend[starts[:, None] + np.arange(t)[None, :]]
    else:
        clip = clip_windows(sample, options, blendshapes=blendshapes, partial="none", frames=(frames, det))
        wins, bwins = clip.windows, clip.blendshapes
    if len(wins) == 0:  # shorter than a window: every detected frame is a still
        return stills(np.flatnonzero(det))
    keep = np.arange(len(wins))
    if max_windows is not None and len(wins) > max_windows:
        keep = np.linspace(0, len(wins) - 1, max_windows).round().astype(int)
    if blend is None:
        return wins[keep]
    return wins[keep], bwins[keep]


def _blendshapes_of(sample: ExtractedSample) -> np.ndarray:
    if sample.blendshapes is None:
        raise DataError(f"{sample.ref.path}: no blendshapes in its landmark cache entry (extract with blendshapes on)")
    return np.asarray(sample.blendshapes, np.float32)


PartialMode = Literal["none", "short", "all"]
"""Which partial windows :func:`clip_windows` keeps: ``none``; ``short``: only in runs of frames
too short for a full window (what a clip shorter than a window is scored on); ``all``: every
run's first ones, as the live recognizer publishes them."""


@dataclass
class ClipWindows:
    """The windows of one clip, in decision order."""

    windows: np.ndarray
    """(W, T, 468, 3) float32."""
    ends: np.ndarray
    """(W,) index of each window's last frame (the frame at which a live stream decides it)."""
    times: np.ndarray
    """(W,) source time of that frame, seconds."""
    partial: np.ndarray
    """(W,) bool: the face had been seen for less than a full window."""
    run: np.ndarray
    """(W,) index of the run of consecutive detections the window belongs to (a new run is a
    new track in a live stream)."""
    blendshapes: np.ndarray | None = None
    """(W, T, 52) resampled blendshape scores, when asked for."""


def frame_times(sample: ExtractedSample, options: WindowOptions) -> np.ndarray:
    """(F,) source time of each frame: ``i / fps``, or one frame per sample (``i * step``) for
    a sequence without a frame rate."""
    period = 1.0 / sample.fps if sample.fps else options.step_s
    return np.arange(sample.n_frames, dtype=np.float64) * period


def clip_windows(
    sample: ExtractedSample,
    options: WindowOptions,
    *,
    blendshapes: bool = False,
    partial: PartialMode = "short",
    frames: tuple[np.ndarray, np.ndarray] | None = None,
) -> ClipWindows:
    """The windows a live stream would decide on this clip, by the same rule
    (:mod:`realtime_fer.features.windows`): per run of consecutive frames with a face, a
    :class:`~realtime_fer.features.windows.DecisionClock` decides at the first frame whose window
    holds ``min_samples`` real samples (or is full), then every ``hop_seconds``; each window is
    resampled from the run's frames (samples before its first frame hold it).

    Args:
        options: the window geometry (``seconds`` unset: the legacy ``length / 25``).
        partial: which partial windows to keep (:data:`PartialMode`).
        frames: the sample's :func:`normalized_frames`, when already computed.
    """
    options = options.timed()
    frames, det = frames if frames is not None else normalized_frames(sample)
    blend = _blendshapes_of(sample) if blendshapes else None
    t, step = options.length, options.step_s
    times = frame_times(sample, options)
    min_samples = options.min_samples if partial != "none" else t
    edges = np.flatnonzero(np.diff(np.concatenate([[0], det.astype(np.int8), [0]])))
    ends: list[int] = []
    runs: list[int] = []
    firsts: list[int] = []
    flags: list[bool] = []
    for r, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
        clock = DecisionClock(options.hop_s)
        run_ends, run_flags = [], []
        for j in range(a, b):
            real = real_samples(float(times[j]), float(times[a]), step, t)
            if clock.tick(float(times[j]), real >= min_samples):
                run_ends.append(j)
                run_flags.append(real < t)
        if partial == "short" and not all(run_flags):  # the run has full windows: keep only those
            keep = [k for k, f in enumerate(run_flags) if not f]
            run_ends, run_flags = [run_ends[k] for k in keep], [run_flags[k] for k in keep]
        ends += run_ends
        flags += run_flags
        runs += [r] * len(run_ends)
        firsts += [a] * len(run_ends)
    shape = frames.shape[1:]
    if not ends:
        empty = np.zeros(0, np.int64)
        return ClipWindows(np.zeros((0, t) + shape, np.float32), empty, np.zeros(0), np.zeros(0, bool), empty.copy(),
                           None if blend is None else np.zeros((0, t, blend.shape[1]), np.float32))
    end_arr, first_arr = np.asarray(ends, np.int64), np.asarray(firsts, np.int64)
    older = np.empty((len(ends), t), np.int64)
    newer = np.empty_like(older)
    weight = np.empty((len(ends), t), np.float64)
    for a in np.unique(first_arr):  # one plan per run: samples never reach before its first frame
        rows = first_arr == a
        older[rows], newer[rows], weight[rows] = interpolation_plan(times, end_arr[rows], t, step, first=int(a))
    return ClipWindows(
        windows=resample(frames, older, newer, weight),
        ends=end_arr,
        times=times[end_arr],
        partial=np.asarray(flags, bool),
        run=np.asarray(runs, np.int64),
        blendshapes=None if blend is None else resample(blend, older, newer, weight),
    )


def video_windows(sample: ExtractedSample, options: WindowOptions, *, blendshapes: bool = False) -> tuple[np.ndarray, ...]:
    """The windows of a video or sequence without augmentation (:func:`clip_windows`, partial
    windows only where a run has no full window), with the index of each window's **last**
    frame: ``(windows, ends)``, or with ``blendshapes`` ``(windows, ends, blendshape_windows)``."""
    clip = clip_windows(sample, options, blendshapes=blendshapes)
    out = (clip.windows, clip.ends)
    return out if clip.blendshapes is None else out + (clip.blendshapes,)


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
