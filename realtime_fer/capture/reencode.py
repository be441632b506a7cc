"""Re-encoding a video at another frame rate (tests and benchmarks of windows in seconds).

:func:`reencode` writes what a camera running at ``fps`` would have recorded of the same scene:
output frame ``k`` (time ``k / fps``) is the last source frame at or before that time. The
file is written by OpenCV (``mp4v`` for ``.mp4``, ``MJPG`` for ``.avi``), so no extra encoder
is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from realtime_fer.errors import FerError

log = logging.getLogger(__name__)

_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


def reencode(
    src: str | Path, dst: str | Path, fps: float, *, max_seconds: float | None = None, max_frames: int | None = None, repeats: int = 1
) -> int:
    """Write ``src`` re-timed at ``fps`` to ``dst``; returns the number of frames written.

    Args:
        src: a video file with a frame rate.
        dst: ``.mp4`` (mp4v) or ``.avi`` (MJPG); its folder must exist.
        fps: the output frame rate.
        max_seconds: keep only the first seconds of ``src``.
        max_frames: write at most this many frames.
        repeats: play the (cut) source this many times in a row (a longer clip for benchmarks
            and tests of live viewing; the scene jumps back at each start).

    Raises:
        FerError: the source cannot be read or reports no frame rate, the output cannot be
            written, or ``fps`` is not positive.
    """
    import cv2

    if not fps > 0:
        raise FerError(f"re-encode frame rate must be > 0, got {fps!r}")
    if repeats < 1:
        raise FerError(f"repeats must be >= 1, got {repeats!r}")
    dst = Path(dst)
    fourcc = _FOURCC.get(dst.suffix.lower())
    if fourcc is None:
        raise FerError(f"re-encode output must end in {' or '.join(_FOURCC)}: {dst}")
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise FerError(f"cannot open video {src}")
    try:
        src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not src_fps > 0:
            raise FerError(f"{src} reports no frame rate")
        writer = None
        written = 0
        offset = 0.0  # output time at which the current repeat starts
        index = 0
        ok, frame = cap.read()
        while ok:
            t_next = (index + 1) / src_fps  # the time the next source frame takes over
            if max_seconds is not None and index / src_fps > max_seconds + 1e-9:
                ok = False
            # every output time in [index / src_fps, t_next) shows this source frame
            while ok and written / fps - offset < t_next - 1e-9 and (max_frames is None or written < max_frames):
                if max_seconds is not None and written / fps - offset > max_seconds + 1e-9:
                    break
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
                    if not writer.isOpened():
                        raise FerError(f"cannot write {dst} ({fourcc})")
                writer.write(frame)
                written += 1
            if max_frames is not None and written >= max_frames:
                break
            index += 1
            if ok:
                ok, frame = cap.read()
            if not ok and repeats > 1 and written:
                repeats -= 1
                offset = written / fps
                index = 0
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = cap.read()
    finally:
        cap.release()
        if "writer" in locals() and writer is not None:
            writer.release()
    if written == 0:
        raise FerError(f"no frame read from {src}")
    log.info("re-encoded %s at %.3g fps: %d frames -> %s", src, fps, written, dst)
    return written
