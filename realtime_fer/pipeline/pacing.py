"""Processing-rate control of a live stream the host cannot keep up with (YAML section ``pacing``).

A live source (camera, URL, or a file emulating one) delivers frames whether or not the
pipeline is ready; the capture keeps only the newest (:mod:`realtime_fer.capture.reader`). When
the host is slower than the source, taking the next frame as soon as the previous one has left
the landmarker keeps every core busy, and then every frame of every stream waits behind the
others' work: on the 2-core VM of ``docs/benchmarks.md`` eight streams processed 10 frames a
second each with a capture-to-publish p95 of 3.1-3.6 of those frame periods, the frames' wall
time 13 times their CPU time (waiting for a core and for the GIL).

:class:`LivePacer` bounds the share of time a stream has a frame in flight. It keeps the
*busy time* of the stream's recent frames (from taking the frame to its last message sent) and
lets the recognizer take the next frame no sooner than
``median(busy) / max_duty`` seconds after the previous one (:class:`PacingOptions`), and after
such a pause it takes a frame captured at the end of the pause, not the one that waited in the
capture queue through it (:meth:`LivePacer.captured_after`). So a frame is normally done
before the next is taken (no queueing between the stages or behind the stream's own frames),
the processed frames are evenly spaced, and the streams of a host leave one another enough
slack that a frame's latency stays within about one of its stream's delivered frame periods.
A host that keeps up is not slowed: while ``median(busy) / max_duty`` is shorter than the
source's frame period, every frame is taken as it arrives. Files read as files are never paced.

Fairness: every stream paces itself by its own busy time, which on a shared host rises and falls
with the same contention, so streams of equal cost settle at equal rates.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

FRESH_TOLERANCE = 0.2
"""After a pause, a frame captured up to this fraction of the interval before its end still
counts as fresh (so a stream just slower than its source does not wait a whole frame period
more)."""


@dataclass
class PacingOptions:
    """How a live stream degrades when the host is slower than the source (see the module docs)."""

    enabled: bool = True
    """Pace live streams; ``false``: take the next frame as soon as the landmarker is free."""
    max_duty: float = 0.5
    """Largest share of the time a frame may be in flight: the next frame is taken no sooner than
    the recent busy time over this (0 < max_duty <= 1; 1: no slack)."""
    quantile: float = 0.5
    """Which quantile of the recent busy times sets the interval (the median: one frame stalled by
    another process does not slow the stream for long)."""
    window: int = 8
    """How many recent frames' busy times are kept."""
    min_samples: int = 3
    """Frames done before pacing starts: a stream's first frame is slow (the landmarker's and the
    models' first runs, kernels compiling on a cold cache) and alone would pause the stream for
    seconds at its start."""

    def __post_init__(self) -> None:
        if not 0.0 < self.max_duty <= 1.0:
            raise ValueError("pacing.max_duty must be in (0, 1]")
        if not 0.0 <= self.quantile <= 1.0:
            raise ValueError("pacing.quantile must be in [0, 1]")
        if self.window < 1:
            raise ValueError("pacing.window must be >= 1")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError("pacing.min_samples must be in 1..window")


class LivePacer:
    """When a live stream may take its next frame (see the module docs).

    The recognizer's main thread calls :meth:`wait_s` before taking a frame and :meth:`taken`
    after; the thread that finishes a frame calls :meth:`done` with the moment it was taken.
    Thread-safe.
    """

    def __init__(self, options: PacingOptions) -> None:
        self.options = options
        self._busy: collections.deque[float] = collections.deque(maxlen=options.window)
        self._lock = threading.Lock()
        self._last_take: float | None = None
        self._fresh_after: float | None = None

    def interval_s(self) -> float:
        """The shortest time from one take to the next (0 until ``min_samples`` frames are done)."""
        with self._lock:
            busy = list(self._busy)
        if len(busy) < self.options.min_samples:
            return 0.0
        return float(np.quantile(busy, self.options.quantile)) / self.options.max_duty

    def wait_s(self, now: float | None = None) -> float:
        """Seconds to wait before the next frame may be taken (0: take it now)."""
        if self._last_take is None:
            return 0.0
        now = time.perf_counter() if now is None else now
        interval = self.interval_s()
        wait = max(0.0, self._last_take + interval - now)
        if wait > 0:
            self._fresh_after = self._last_take + (1.0 - FRESH_TOLERANCE) * interval
        return wait

    def captured_after(self) -> float | None:
        """After a wait: the next frame must have been captured at or after this moment
        (``time.perf_counter()``), so that the frame taken is a fresh one, not one that waited
        in the capture queue through the pause; ``None`` when the stream did not wait."""
        return self._fresh_after

    def taken(self, now: float | None = None) -> float:
        """A frame was taken; returns the moment (``time.perf_counter()``), for :meth:`done`."""
        t = time.perf_counter() if now is None else now
        self._last_take = t
        self._fresh_after = None
        return t

    def done(self, t_taken: float, now: float | None = None) -> None:
        """The frame taken at ``t_taken`` is finished (its messages sent)."""
        t = time.perf_counter() if now is None else now
        with self._lock:
            self._busy.append(max(0.0, t - t_taken))
