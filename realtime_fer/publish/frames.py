"""Frame images for remote displays: each processed frame as a small JPEG message.

Off by default (``frames.enabled: false``): a robot or a kiosk that reads only the emotions
should not pay for JPEG encoding or carry images over the network. ``realtime-fer serve``
turns it on for the recognizer it starts, and ``realtime-fer run --publish-frames`` for a
recognizer that a ``serve --connect`` on another machine draws.

The encoder runs in the recognizer's worker thread right after the frame's predictions are
sent, so a subscriber receives a frame's predictions before its image and can pair them by
``frame`` index. Encoding a 640-pixel-wide frame at quality 70 costs about 1-2 ms; ``max_fps``
bounds how many frames a second are encoded (the others are skipped, evenly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from realtime_fer.publish.schema import FrameImage

log = logging.getLogger(__name__)

#: Time stamps this close before a slot still take it (rounding in source positions).
_SLACK_S = 1e-3


@dataclass
class FrameImageOptions:
    """Frame images on ``fer.<stream>.frame.`` (runtime YAML section ``frames``)."""

    enabled: bool = False
    """Publish frame images (``run --publish-frames``; ``serve`` turns it on)."""
    max_width: int = 640
    """Frames wider than this are scaled down (keeping the aspect ratio) before encoding."""
    quality: int = 70
    """JPEG quality, 1-100."""
    max_fps: float | None = 15.0
    """At most this many images a second per stream (source time); ``null``: every processed frame."""

    def __post_init__(self) -> None:
        if self.max_width < 16:
            raise ValueError("frames.max_width must be >= 16")
        if not 1 <= self.quality <= 100:
            raise ValueError("frames.quality must be in 1..100")
        if self.max_fps is not None and not self.max_fps > 0:
            raise ValueError("frames.max_fps must be > 0 (or null for every frame)")


class FrameImageEncoder:
    """Turns processed frames into :class:`~realtime_fer.publish.schema.FrameImage` messages.

    Args:
        options: size, quality and rate.
        stream_id: the stream the images belong to (their topic ``fer.<stream>.frame.``).
    """

    def __init__(self, options: FrameImageOptions, stream_id: str) -> None:
        import cv2

        self._cv2 = cv2
        self.options = options
        self.stream_id = stream_id
        self._period = 1.0 / options.max_fps if options.max_fps else 0.0
        self._next_t: float | None = None
        self.encoded = 0
        """Images encoded so far."""

    def encode(self, image: np.ndarray, frame: int, t_capture: float, t_source: float) -> FrameImage | None:
        """The JPEG message of one frame, or ``None`` when ``max_fps`` skips it.

        Args:
            image: the captured BGR image, (height, width, 3) uint8.
            frame: the frame's index (as in its predictions).
            t_capture: its capture time, Unix seconds.
            t_source: its time for the rate limit (monotonic or the file position), seconds.
        """
        if self._period:
            if self._next_t is not None and t_source < self._next_t - _SLACK_S:
                return None
            # the next slot is one period after this one's, not after now: a steady rate, and a
            # late frame (or a jump after a reconnect) restarts the clock
            nxt = (self._next_t if self._next_t is not None else t_source) + self._period
            self._next_t = nxt if nxt > t_source else t_source + self._period
        h, w = image.shape[:2]
        small = image
        if w > self.options.max_width:
            scale = self.options.max_width / w
            small = self._cv2.resize(image, (self.options.max_width, max(1, round(h * scale))), interpolation=self._cv2.INTER_AREA)
        ok, buf = self._cv2.imencode(".jpg", small, [self._cv2.IMWRITE_JPEG_QUALITY, int(self.options.quality)])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            log.warning("could not encode frame %d as JPEG; skipped", frame)
            return None
        self.encoded += 1
        return FrameImage(stream=self.stream_id, frame=int(frame), t_capture=float(t_capture), image_size=[int(w), int(h)], jpeg=buf.tobytes())
