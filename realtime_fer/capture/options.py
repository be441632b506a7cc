"""Configuration of the capture stage (YAML section ``capture``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class CaptureOptions:
    """How a source is opened and read by :class:`~realtime_fer.capture.reader.CaptureThread`.

    Live sources (cameras, network streams) use a short queue in which the newest frame wins;
    files use a longer queue that the reader blocks on, so no frame is ever skipped (unless
    :attr:`emulate_live` makes a file behave as a camera).
    """

    queue_size: int = 2
    """Frames buffered for a live source; when full, the oldest frame is dropped and counted."""
    file_queue_size: int = 16
    """Frames buffered (decoded ahead) for a file; the reader waits when it is full."""
    realtime: bool = False
    """Pace a file at its own frame rate instead of as fast as the consumer takes frames."""
    emulate_live: bool = False
    """Read a file as a live camera delivers it (``bench --streams N --realtime``): paced at the
    file's frame rate, the newest frame wins in a queue of ``queue_size`` (a frame the consumer
    is too slow for is dropped and counted, never queued), each frame stamped with the moment
    the camera would have captured it (its due time, not the file position), and a frame read
    more than one frame period after its due time dropped, as a camera does not wait. The end
    of the file still ends the run."""
    open_timeout_s: float = 5.0
    """Bound on opening a network stream (FFmpeg ``CAP_PROP_OPEN_TIMEOUT_MSEC``)."""
    read_timeout_s: float = 5.0
    """Bound on one read from a network stream (FFmpeg ``CAP_PROP_READ_TIMEOUT_MSEC``); a stream
    that delivers nothing for this long counts as lost."""
    reconnect_initial_s: float = 0.5
    """First wait before reopening a lost live source; doubled after each failed attempt."""
    reconnect_max_s: float = 8.0
    """Upper bound of the reconnect wait."""
    max_reconnect_attempts: int | None = None
    """Give up (and end the run) after this many failed reopen attempts; ``None``: never."""
    decode_threads: int = 1
    """FFmpeg decoder threads for files and network streams; ``0``: FFmpeg's choice (one per
    core). One thread decodes a 640x360 H.264 frame in about 1 ms and leaves the other core to
    the landmarker; FFmpeg's default of 2 threads here cost 1.4 ms of CPU per frame instead of
    0.95 ms and competed with MediaPipe."""
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    """How an ``rtsp://`` stream is carried: ``tcp`` (RTP interleaved in the RTSP connection,
    OpenCV's default; passes firewalls) or ``udp`` (for cameras and relays that only send RTP
    over UDP). Ignored when the user sets ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` themselves."""
    camera_width: int | None = None
    """Requested camera frame width in pixels (cameras only; the driver may pick another)."""
    camera_height: int | None = None
    """Requested camera frame height in pixels (cameras only)."""
    camera_fps: float | None = None
    """Requested camera frame rate (cameras only)."""

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.file_queue_size < 1:
            raise ValueError("queue sizes must be >= 1")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("open_timeout_s and read_timeout_s must be > 0")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if self.decode_threads < 0:
            raise ValueError("decode_threads must be >= 0 (0: FFmpeg's choice)")
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 0:
            raise ValueError("max_reconnect_attempts must be >= 0 or null")
