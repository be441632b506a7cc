"""Person-adaptive normalisation: remove a person's resting face from their features.

Faces differ at rest: one person's neutral mouth is wider, another's brows sit higher. Pose
normalisation (:mod:`realtime_fer.landmarks.normalize`) removes position, rotation and scale,
not identity, so a classifier trained on other people can read somebody's resting face as an
expression. A :class:`RestingFace` estimates, per tracked face, that person's resting face
``r`` from their own windows, and the features become

    x' = x - (r - n)

where ``n`` is the population's mean neutral face (``assets/neutral_face.npy``, the mean
neutral face of RAF-DB train): the person's movements are kept, placed on the average face.

**What counts as rest** (slow and robust): a window counts only when it is still (the RMS
spread of its landmarks over time is below ``max_spread``, so speech and head motion are left
out) and, with ``require_neutral`` (default), when the recognizer published ``neutral`` for it.
The estimate is an exponential moving average of those windows' mean faces with time constant
``time_constant_s``, and each window's pull on it is limited to ``max_step`` (a robust update:
one odd window cannot move it far).

**Cold start:** until ``warmup_s`` seconds of resting windows have been seen, no correction is
applied (the features are exactly the unadapted ones, as for a face that has just appeared);
from then on the full correction. A face whose track is lost starts again from cold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass
class AdaptationOptions:
    """YAML section ``adaptation`` of the runtime config (and of ``evaluate``)."""

    enabled: bool = False
    """Correct each face's features by its resting face once one is known."""
    time_constant_s: float = 10.0
    """Time constant of the resting face's moving average (seconds of resting windows)."""
    warmup_s: float = 2.0
    """Seconds of resting windows needed before the correction applies (cold start: none)."""
    max_spread: float = 0.01
    """A window is still when the RMS over its landmarks of each landmark's spread over time is
    at most this (normalised face units; the landmarker's own jitter is about 0.002)."""
    require_neutral: bool = True
    """Only windows the recognizer published as ``neutral`` count as rest."""
    max_step: float = 0.02
    """Largest RMS change of the estimate that one window can cause (robust update)."""

    def __post_init__(self) -> None:
        for name in ("time_constant_s", "max_spread", "max_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"adaptation.{name} must be > 0")
        if self.warmup_s < 0:
            raise ValueError("adaptation.warmup_s must be >= 0")


class RestingFace:
    """The resting-face estimate of one tracked face, on a fixed set of landmarks.

    Args:
        population: (L, 3) the population's neutral face on those landmarks.
        options: the adaptation settings.
    """

    def __init__(self, population: np.ndarray, options: AdaptationOptions) -> None:
        self.population = np.asarray(population, np.float64)
        self.options = options
        self.estimate: np.ndarray | None = None
        self.rest_s = 0.0
        """Seconds of resting windows seen."""
        self._last_t: float | None = None

    @staticmethod
    def spread(window: np.ndarray) -> float:
        """RMS over landmarks of the per-landmark spread over time of a (T, L, 3) window."""
        w = np.asarray(window, np.float64)
        return float(np.sqrt(w.var(axis=0).sum(axis=-1).mean()))

    def observe(self, window: np.ndarray, t_s: float, neutral: bool = True) -> bool:
        """Fold one (T, L, 3) *unadapted* window scored at ``t_s`` seconds into the estimate
        when it counts as rest; returns whether it did."""
        o = self.options
        dt = 0.0 if self._last_t is None else min(max(t_s - self._last_t, 0.0), 1.0)  # a gap is not rest
        self._last_t = t_s
        if (o.require_neutral and not neutral) or self.spread(window) > o.max_spread:
            return False
        face = np.asarray(window, np.float64).mean(axis=0)
        if self.estimate is None:
            self.estimate = face
        else:
            step = (1.0 - np.exp(-dt / o.time_constant_s)) * (face - self.estimate)
            rms = float(np.sqrt((step**2).sum(axis=-1).mean()))
            if rms > o.max_step:
                step *= o.max_step / rms
            self.estimate = self.estimate + step
        self.rest_s += dt
        return True

    @property
    def ready(self) -> bool:
        """The cold start is over: the correction applies."""
        return self.estimate is not None and self.rest_s >= self.options.warmup_s

    def offset(self) -> np.ndarray | None:
        """``r - n`` (L, 3) float32 to subtract from every frame, or ``None`` before warm-up."""
        if not self.ready:
            return None
        return (self.estimate - self.population).astype(np.float32)


class PersonAdaptation:
    """Resting faces of all tracks of a stream, on the bundle's landmark union.

    Args:
        union: sorted mesh indices held per face (``FeatureSelector.union``).
        subsets: emotion -> its model's mesh indices (each a subset of ``union``).
        population: (468, 3) population neutral face.
        options: the adaptation settings.
    """

    def __init__(self, union: np.ndarray, subsets: Mapping[str, np.ndarray], population: np.ndarray, options: AdaptationOptions) -> None:
        self.union = np.asarray(union, np.int64)
        self.options = options
        self._population = np.asarray(population, np.float64)[self.union]
        self._positions = {e: np.searchsorted(self.union, np.asarray(idx, np.int64)) for e, idx in subsets.items()}
        self._tracks: dict[int, RestingFace] = {}

    def track(self, track_id: int) -> RestingFace:
        face = self._tracks.get(track_id)
        if face is None:
            face = self._tracks[track_id] = RestingFace(self._population, self.options)
        return face

    def _warm_offsets(self, track_ids: list[int]) -> list[tuple[int, np.ndarray]]:
        """(row, offset over the union) of each track in ``track_ids`` whose resting face is known."""
        out = []
        for row, tid in enumerate(track_ids):
            face = self._tracks.get(tid)
            off = face.offset() if face is not None else None
            if off is not None:
                out.append((row, off))
        return out

    def correct(self, inputs: Mapping[str, np.ndarray], track_ids: list[int]) -> int:
        """Subtract each warm track's offset from its rows of the per-emotion ``inputs``
        (N, T, L_e, 3), **in place**; returns the number of rows corrected."""
        warm = self._warm_offsets(track_ids)
        for row, off in warm:
            for e, x in inputs.items():
                x[row] -= off[self._positions[e]][None]
        return len(warm)

    def correct_union(self, windows: np.ndarray, track_ids: list[int]) -> int:
        """Subtract each warm track's offset from its row of the union ``windows``
        (N, T, L_union, 3), **in place**; returns the number of rows corrected."""
        warm = self._warm_offsets(track_ids)
        for row, off in warm:
            windows[row] -= off[None]
        return len(warm)

    def observe(self, track_id: int, window: np.ndarray, t_s: float, neutral: bool) -> bool:
        """Feed a track's unadapted union window (T, L_union, 3)."""
        return self.track(track_id).observe(window, t_s, neutral)

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def clear(self) -> None:
        self._tracks.clear()
