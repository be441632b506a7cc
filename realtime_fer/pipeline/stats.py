"""Timing statistics of the pipeline: per-stage latency samples and frame rates."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable

import numpy as np

#: Samples kept per series; older ones are forgotten so a long run does not grow without bound.
MAX_SAMPLES = 20_000


@dataclass
class Summary:
    """Distribution of one series, in milliseconds."""

    n: int
    mean_ms: float
    median_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Summary:
        a = np.fromiter(seconds, dtype=np.float64) * 1000.0
        if a.size == 0:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        return cls(int(a.size), float(a.mean()), float(np.median(a)), float(np.percentile(a, 95)), float(a.max()))

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean_ms": self.mean_ms, "median_ms": self.median_ms, "p95_ms": self.p95_ms, "max_ms": self.max_ms}


class _Ring:
    """The last ``maxlen`` floats, in one preallocated array (no allocation per sample)."""

    __slots__ = ("_a", "_n", "_pos")

    def __init__(self, maxlen: int) -> None:
        self._a = np.empty(maxlen, dtype=np.float64)
        self._n = 0
        self._pos = 0

    def append(self, value: float) -> None:
        self._a[self._pos] = value
        self._pos = (self._pos + 1) % self._a.size
        if self._n < self._a.size:
            self._n += 1

    def values(self) -> np.ndarray:
        """A copy, oldest first."""
        if self._n < self._a.size:
            return self._a[: self._n].copy()
        return np.concatenate([self._a[self._pos :], self._a[: self._pos]])


class TimingLog:
    """Named series of durations in seconds (bounded to the last :data:`MAX_SAMPLES` each).

    Each series is one preallocated array, so the log's memory is fixed from a series' first
    sample on, however long the run."""

    def __init__(self, maxlen: int = MAX_SAMPLES) -> None:
        self._maxlen = maxlen
        self._series: dict[str, _Ring] = {}

    def add(self, name: str, seconds: float) -> None:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Ring(self._maxlen)
        series.append(seconds)

    def samples(self, name: str) -> list[float]:
        series = self._series.get(name)
        return series.values().tolist() if series is not None else []

    def summary(self, name: str) -> Summary:
        series = self._series.get(name)
        return Summary.of(series.values() if series is not None else ())

    def names(self) -> list[str]:
        return list(self._series)

    def summaries(self) -> dict[str, Summary]:
        return {name: self.summary(name) for name in self._series}


class RateMeter:
    """Events per second over the last ``n`` event times."""

    def __init__(self, n: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=n)

    def tick(self, t: float) -> None:
        self._times.append(t)

    def rate(self) -> float:
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])
