"""Opening video sources: a webcam index, a network stream URL, a video file or a still image.

:func:`open_source` turns what the user typed after ``--source`` into an opened
:class:`Source`. Opening is validated by reading the first frame (which is kept and returned by
the first :meth:`Source.read`), so a source that opens but cannot deliver fails here with a
:class:`~realtime_fer.errors.SourceError`, not later in the pipeline.

A :class:`Source` is not thread-safe: one thread (normally the
:class:`~realtime_fer.capture.reader.CaptureThread`) reads, reopens and closes it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from realtime_fer.capture.options import CaptureOptions
from realtime_fer.errors import SourceError

log = logging.getLogger(__name__)

SourceKind = Literal["camera", "stream", "file", "image"]

#: URL schemes opened as live network streams through FFmpeg.
STREAM_SCHEMES: frozenset[str] = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"})
#: File suffixes read as a single still image.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm"})

_SOURCE_HINT = "--source accepts a camera index (0, 1, ...), a video file, an image, or an rtsp:// or http(s):// URL"
_FIRST_FRAME_ATTEMPTS_CAMERA = 30  # cameras often return a few empty frames while starting


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source`` value, not yet opened."""

    kind: SourceKind
    target: str | int
    """Camera index, URL or file path, as passed to OpenCV."""

    @property
    def display(self) -> str:
        """A printable name; passwords in URLs are replaced by ``***``."""
        if self.kind == "camera":
            return f"camera {self.target}"
        if self.kind == "stream":
            return redact_url(str(self.target))
        return str(self.target)

    @property
    def is_live(self) -> bool:
        return self.kind in ("camera", "stream")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_source(spec: str | int | os.PathLike[str]) -> SourceSpec:
    """Classify a ``--source`` value without opening it.

    ``0`` / ``"0"``: camera index; ``rtsp://``, ``http(s)://`` and other stream schemes: network
    stream; ``file://`` or a plain path: a still image when its suffix is an image suffix, else a
    video file.
    """
    if isinstance(spec, bool):
        raise SourceError(f"invalid source {spec!r}; {_SOURCE_HINT}")
    if isinstance(spec, int):
        if spec < 0:
            raise SourceError(f"invalid camera index {spec}; {_SOURCE_HINT}")
        return SourceSpec("camera", spec)
    text = os.fspath(spec).strip() if not isinstance(spec, str) else spec.strip()
    if not text:
        raise SourceError(f"empty source; {_SOURCE_HINT}")
    if re.fullmatch(r"\d+", text):
        return SourceSpec("camera", int(text))
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            return parse_source(urlsplit(text).path)
        if scheme in STREAM_SCHEMES:
            return SourceSpec("stream", text)
        raise SourceError(f"unsupported URL scheme {scheme!r} in {redact_url(text)}; {_SOURCE_HINT}")
    path = Path(text).expanduser()
    kind: SourceKind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
    return SourceSpec(kind, str(path))


class Source:
    """An opened source. Use :func:`open_source` to create one.

    Attributes:
        spec: what was opened.
        fps: frames per second the source reports (``None`` when unknown, e.g. a still image or
            a camera that does not say).
        width, height: frame size in pixels, from the first frame.
        frame_count: number of frames a video file reports (approximate for some containers);
            ``None`` for live sources.
    """

    def __init__(self, spec: SourceSpec, options: CaptureOptions | None = None) -> None:
        self.spec = spec
        self.options = options or CaptureOptions()
        self.fps: float | None = None
        self.width: int = 0
        self.height: int = 0
        self.frame_count: int | None = None
        self._cap = None  # cv2.VideoCapture
        self._image: np.ndarray | None = None
        self._pending: tuple[np.ndarray, float | None] | None = None
        self._closed = False
        self._open()

    # -- properties ------------------------------------------------------------------------
    @property
    def kind(self) -> SourceKind:
        return self.spec.kind

    @property
    def is_live(self) -> bool:
        """True for cameras and network streams (frames are dropped, not queued, when late)."""
        return self.spec.is_live

    @property
    def name(self) -> str:
        return self.spec.display

    def __repr__(self) -> str:
        return f"Source({self.kind}, {self.name!r}, {self.width}x{self.height}, fps={self.fps})"

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame as ``(bgr_image, position_ms)``, or ``None`` when the source has no
        more frames (end of file, image already served) or a live source failed to deliver one
        (lost; call :meth:`reopen`). ``position_ms`` is ``None`` for live sources."""
        if self._closed:
            return None
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if self.kind == "image":
            return None
        ok, img = self._cap.read()
        if not ok or img is None:
            return None
        return img, self._position_ms()

    def reopen(self) -> None:
        """Close and open the source again (for live sources that were lost).

        Raises:
            SourceError: it cannot be opened (yet).
        """
        self._release()
        self._closed = False
        self._open()

    def close(self) -> None:
        """Release the underlying capture. Idempotent."""
        self._closed = True
        self._pending = None
        self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            with contextlib.suppress(Exception):
                cap.release()

    def _position_ms(self) -> float | None:
        if self.kind != "file":
            return None
        import cv2

        pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return pos if math.isfinite(pos) and pos >= 0 else None

    def _open(self) -> None:
        opener = {"camera": self._open_camera, "stream": self._open_stream, "file": self._open_file, "image": self._open_image}
        with _quiet_opencv():
            opener[self.kind]()
        if self._pending is not None:
            img = self._pending[0]
            self.height, self.width = int(img.shape[0]), int(img.shape[1])
        log.info("opened %s: %dx%d, fps %s", self.name, self.width, self.height, f"{self.fps:.2f}" if self.fps else "unknown")

    def _set_fps(self) -> None:
        import cv2

        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else None

    def _open_camera(self) -> None:
        import cv2

        index = int(self.spec.target)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"no camera found at index {index}; {_SOURCE_HINT}")
        o = self.options
        if o.camera_width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, o.camera_width)
        if o.camera_height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, o.camera_height)
        if o.camera_fps:
            cap.set(cv2.CAP_PROP_FPS, o.camera_fps)
        self._cap = cap
        self._set_fps()
        deadline = time.monotonic() + o.open_timeout_s
        for _ in range(_FIRST_FRAME_ATTEMPTS_CAMERA):
            ok, img = cap.read()
            if ok and img is not None:
                self._pending = (img, None)
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._release()
        raise SourceError(f"camera {index} opened but delivered no frame within {o.open_timeout_s:g} s")

    def _open_stream(self) -> None:
        import cv2

        url = str(self.spec.target)
        o = self.options
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(o.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(o.read_timeout_s * 1000),
            *_decoder_params(o),
        ]
        with _ffmpeg_capture_options(url, o):
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open stream {self.name}: connection refused, no answer within "
                f"{o.open_timeout_s:g} s, or not a video stream FFmpeg can read"
            )
        self._cap = cap
        self._set_fps()
        ok, img = cap.read()
        if not ok or img is None:
            self._release()
            raise SourceError(f"stream {self.name} opened but delivered no frame within {o.read_timeout_s:g} s")
        self._pending = (img, None)

    def _open_file(self) -> None:
        import cv2

        path = Path(str(self.spec.target))
        _check_file(path, "video file")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, _decoder_params(self.options))
        if not cap.isOpened():
            cap.release()
            # Not a video FFmpeg knows; it may still be an image with an unusual suffix.
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                log.info("%s is not a video; reading it as a still image", path)
                self.spec = SourceSpec("image", str(path))
                self._image = img
                self._pending = (img, 0.0)
                return
            raise SourceError(f"cannot read {path}: not a video or image that OpenCV/FFmpeg can decode")
        self._cap = cap
        self._set_fps()
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
        ok, img = cap.read()
        if not ok or img is None:
            self._release()
            raise SourceError(f"cannot read {path}: the video has no decodable frame")
        self._pending = (img, self._position_ms())

    def _open_image(self) -> None:
        import cv2

        path = Path(str(self.spec.target))
        _check_file(path, "image file")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"cannot decode image {path}")
        self._image = img
        self._pending = (img, 0.0)
        self.frame_count = 1


def open_source(spec: str | int | os.PathLike[str], options: CaptureOptions | None = None) -> Source:
    """Open a camera index, stream URL, video file or still image.

    Args:
        spec: ``0`` or ``"0"`` (camera index), ``rtsp://...`` / ``http(s)://...`` (network
            stream), a path to a video file or to an image.
        options: timeouts and camera settings; defaults to :class:`CaptureOptions`.

    Raises:
        SourceError: the source does not exist or cannot be opened; the message says why.
    """
    _quiet_ffmpeg_by_default()
    return Source(parse_source(spec), options)


_CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


@contextlib.contextmanager
def _ffmpeg_capture_options(url: str, options: CaptureOptions) -> Iterator[None]:
    """OpenCV passes FFmpeg options only through ``OPENCV_FFMPEG_CAPTURE_OPTIONS``, read when a
    capture opens: set the RTSP transport there for the open, unless the user set it."""
    if not url.lower().startswith(("rtsp://", "rtsps://")) or _CAPTURE_OPTIONS_ENV in os.environ:
        yield
        return
    os.environ[_CAPTURE_OPTIONS_ENV] = f"rtsp_transport;{options.rtsp_transport}"
    try:
        yield
    finally:
        os.environ.pop(_CAPTURE_OPTIONS_ENV, None)


def _decoder_params(options: CaptureOptions) -> list[int]:
    """OpenCV open parameters for FFmpeg's decoder threads (none: FFmpeg's default)."""
    import cv2

    return [cv2.CAP_PROP_N_THREADS, int(options.decode_threads)] if options.decode_threads > 0 else []


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SourceError(f"{what} not found: {path}; {_SOURCE_HINT}")
    if not path.is_file():
        raise SourceError(f"{path} is not a file; {_SOURCE_HINT}")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{what} {path} is not readable (permission denied)")


def _quiet_ffmpeg_by_default() -> None:
    """FFmpeg prints its own lines (e.g. "Connection refused") on stderr; our SourceError already
    says it. Keep them unless debug logging is on or the user set the variable."""
    if not log.isEnabledFor(logging.DEBUG):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings while probing a source (unless debug logging is on)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    import cv2

    try:
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except Exception:  # pragma: no cover - very old OpenCV without utils.logging
        yield
        return
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)
