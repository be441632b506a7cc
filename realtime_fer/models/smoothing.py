"""The decision over time: smoothing each face's probabilities so that it does not flicker.

A talking face changes from one window to the next (the mouth opens and closes several times a
second), and so do its per-window probabilities. Each face's published ``top`` is decided on an
**exponential moving average** of its probabilities with a time constant ``tau`` (seconds, so the
same setting behaves the same at 25 and 30 fps, and across dropped frames):

    s_k = s_{k-1} + (1 - exp(-dt_k / tau)) * (p_k - s_{k-1})

where ``dt_k`` is the time since the face's previous scored window. A new face starts from its
first window's probabilities (no warm-up bias towards any emotion), and, with
``restart_at_full``, again from its first full window after partial ones. The cost is latency: after a
step change of expression the smoothed probability covers 63 % of the step after ``tau`` seconds
(``tools/bench_smoothing.py`` measures the decision's delay on real clips).

The same code smooths the live stream (per track, :class:`TrackSmoother`) and offline clips
(:func:`smooth_sequence`, used by ``realtime-fer evaluate``), so both publish the same tops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np


@dataclass
class SmoothingOptions:
    """YAML section ``smoothing`` of the runtime config (and ``evaluate --smoothing``)."""

    method: Literal["ema", "none"] = "ema"
    """``ema``: exponential moving average of each face's probabilities; ``none``: decide on each
    window alone."""
    time_constant_s: float = 0.5
    """``tau`` of the moving average, in seconds."""
    restart_at_full: bool = True
    """A face's first *full* window restarts its average: the decisions on its partial windows
    (flagged ``partial``, less than a window of the face seen) are provisional and do not carry
    into the full windows' (docs/video.md, "Partial windows are provisional")."""

    def __post_init__(self) -> None:
        if self.method not in ("ema", "none"):
            raise ValueError(f"smoothing.method must be 'ema' or 'none', got {self.method!r}")
        if not self.time_constant_s > 0:
            raise ValueError("smoothing.time_constant_s must be > 0")

    def gain(self, dt_s: float | np.ndarray) -> float | np.ndarray:
        """Weight of the newest window after ``dt_s`` seconds (1.0: no smoothing)."""
        if self.method == "none":
            return np.ones_like(dt_s) if isinstance(dt_s, np.ndarray) else 1.0
        return 1.0 - np.exp(-np.maximum(dt_s, 0.0) / self.time_constant_s)


def smooth_sequence(probabilities: Mapping[str, np.ndarray], times_s: np.ndarray, options: SmoothingOptions,
                    partial: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Smoothed probabilities of one face's consecutive windows.

    Args:
        probabilities: emotion -> (K,) probabilities of the face's windows in time order.
        times_s: (K,) time of each window (its last frame), seconds.
        options: the smoothing.
        partial: (K,) which windows are partial (a run's first ones), as :class:`TrackSmoother`
            is told: with ``restart_at_full`` the first full window after them restarts the
            average.

    Returns:
        emotion -> (K,) smoothed probabilities (float32).
    """
    t = np.asarray(times_s, np.float64)
    gains = options.gain(np.diff(t, prepend=t[:1])) if len(t) else np.zeros(0)
    starts = {0}
    if partial is not None and options.restart_at_full and len(t) and bool(partial[0]):
        full = np.flatnonzero(~np.asarray(partial, bool))
        if len(full):
            starts.add(int(full[0]))
    out = {}
    for e, p in probabilities.items():
        p = np.asarray(p, np.float64)
        s = np.empty_like(p)
        acc = 0.0
        for k in range(len(p)):
            acc = p[k] if k in starts else acc + gains[k] * (p[k] - acc)
            s[k] = acc
        out[e] = s.astype(np.float32)
    return out


class TrackSmoother:
    """Per-track moving averages for the live stream (one instance per recognizer; not
    thread-safe: used by the thread that finishes frames)."""

    def __init__(self, options: SmoothingOptions | None = None) -> None:
        self.options = options or SmoothingOptions()
        self._state: dict[int, tuple[float, dict[str, float]]] = {}
        self._provisional: set[int] = set()
        """Tracks whose average holds partial windows only."""

    def update(self, track_id: int, probabilities: Mapping[str, float], t_s: float, partial: bool = False) -> dict[str, float]:
        """Fold one window of ``track_id`` (scored at ``t_s`` seconds; ``partial``: a partial
        window) into its average; returns the smoothed probabilities."""
        prev = self._state.get(track_id)
        if partial:
            if prev is None:
                self._provisional.add(track_id)
        elif track_id in self._provisional:
            self._provisional.discard(track_id)
            if self.options.restart_at_full:
                prev = None
        if prev is None or self.options.method == "none":
            smoothed = {e: float(p) for e, p in probabilities.items()}
        else:
            g = float(self.options.gain(t_s - prev[0]))
            smoothed = {e: prev[1].get(e, float(p)) + g * (float(p) - prev[1].get(e, float(p))) for e, p in probabilities.items()}
        self._state[track_id] = (t_s, smoothed)
        return smoothed

    def forget(self, track_id: int) -> None:
        """Drop a track's state (its face left, or its window restarted)."""
        self._state.pop(track_id, None)
        self._provisional.discard(track_id)

    def clear(self) -> None:
        self._state.clear()
        self._provisional.clear()

    def __len__(self) -> int:
        return len(self._state)
