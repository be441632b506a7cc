"""What the capture stage hands to its consumer: frames and source events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Kinds of :class:`CaptureEvent`. They match the status events of the message schema.
CaptureEventKind = Literal["started", "source_lost", "reconnecting", "recovered", "ended"]


@dataclass
class Frame:
    """One captured image."""

    index: int
    """Capture order, 0, 1, 2, ...; continues across reconnects (dropped frames leave gaps)."""
    image: np.ndarray
    """(height, width, 3) uint8, BGR as OpenCV decodes it."""
    timestamp: float
    """Wall-clock capture time, Unix seconds (``time.time()``), taken right after the read."""
    t_capture: float
    """Monotonic capture time in seconds (``time.perf_counter()``), for latency measurement
    inside this process."""
    source_pos_ms: float | None = None
    """Position in a video file, milliseconds (the frame's presentation time); ``None`` for
    live sources. 0 for a still image."""

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class CaptureEvent:
    """A change in the state of the source, reported by the capture thread."""

    kind: CaptureEventKind
    timestamp: float
    """Wall-clock time of the event, Unix seconds."""
    detail: str = ""
    """Human-readable explanation (the URL, why it was lost, how long until the next attempt)."""
    attempt: int = 0
    """For ``reconnecting``: the 1-based attempt number; for ``recovered``: attempts it took."""
    delay_s: float = 0.0
    """For ``reconnecting``: the wait before this attempt."""
