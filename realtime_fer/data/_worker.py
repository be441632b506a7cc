"""Landmark extraction of single samples, run inside worker processes.

Each worker holds one IMAGE-mode :class:`~realtime_fer.landmarks.FaceLandmarkDetector`, made
on first use and reused for every image and sequence frame it processes. Videos get a fresh
VIDEO-mode detector each (MediaPipe's tracking state and timestamps belong to one stream).

Sequences (CK+ apex frames) run in IMAGE mode frame by frame: they are a handful of stills
without a frame rate, and detecting each from scratch matches how stills are processed, so a
sequence's frames are comparable with the image samples of the same dataset.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime_fer.data.cache import CachedLandmarks
from realtime_fer.data.layouts import SampleRef
from realtime_fer.landmarks.detector import NUM_BLENDSHAPES, NUM_LANDMARKS, FaceLandmarkDetector, FaceLandmarks, LandmarkerOptions

log = logging.getLogger(__name__)

#: Videos whose larger side is below this many pixels are treated like face crops and padded.
SMALL_VIDEO_PX = 200
#: Frame rate assumed for VIDEO-mode timestamps when a file reports none.
FALLBACK_FPS = 30.0


class SampleFailure(Exception):
    """A sample cannot be read (unreadable image, video that cannot be opened or has no frames)."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; plain data so that it pickles under ``spawn``."""

    options: LandmarkerOptions
    max_video_frames: int | None = None
    quiet_native: bool = True
    """Send the worker's fd 2 to /dev/null (MediaPipe's C++ logging cannot be turned off)."""


_config: WorkerConfig | None = None
_image_detector: FaceLandmarkDetector | None = None


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer: remember the configuration; silence native stderr if asked."""
    global _config
    _config = config
    if config.quiet_native:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


def process_batch(refs: list[SampleRef]) -> list[tuple[str, Any]]:
    """Extract several samples. Each result is ``("ok", CachedLandmarks)``, ``("failed", reason)``
    for a file that cannot be decoded (deterministic, may be cached) or ``("error", reason)`` for
    any other exception (not cached). Never raises for a bad sample.
    """
    assert _config is not None, "init_worker() was not called"
    return run_batch(refs, _config)


def run_batch(refs: list[SampleRef], config: WorkerConfig) -> list[tuple[str, Any]]:
    """:func:`process_batch` with an explicit configuration (also used in-process)."""
    results: list[tuple[str, Any]] = []
    for ref in refs:
        try:
            results.append(("ok", extract_one(ref, config)))
        except SampleFailure as exc:
            results.append(("failed", str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a dataset
            log.debug("extraction of %s failed", ref.path, exc_info=True)
            results.append(("error", f"{type(exc).__name__}: {exc}"))
    return results


def close_detectors() -> None:
    """Close the cached IMAGE-mode detector (for in-process use)."""
    global _image_detector
    if _image_detector is not None:
        _image_detector.close()
        _image_detector = None


def extract_one(ref: SampleRef, config: WorkerConfig) -> CachedLandmarks:
    """Landmarks of one sample."""
    if ref.kind == "video":
        return _extract_video(ref, config)
    frames = ref.frames if ref.kind == "sequence" else (ref.path,)
    detector = _get_image_detector(config.options)
    rows, blends, size = [], [], (0, 0)
    for f in frames:
        image = _read_image(f)
        size = (int(image.shape[1]), int(image.shape[0]))
        points, blend = _largest(detector.detect(image))
        rows.append(points)
        blends.append(blend)
    return CachedLandmarks(np.stack(rows).astype(np.float32), None, size, blendshapes=_blend_array(blends, config.options))


def _get_image_detector(options: LandmarkerOptions) -> FaceLandmarkDetector:
    global _image_detector
    if _image_detector is None or _image_detector.options != options:
        close_detectors()
        _image_detector = FaceLandmarkDetector(options, running_mode="image")
    return _image_detector


def _read_image(path: os.PathLike[str]) -> np.ndarray:
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SampleFailure(f"cannot read file: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None or image.size == 0:
        raise SampleFailure("cannot decode image (corrupt or unsupported file)")
    return image


def _largest(faces: list[FaceLandmarks]) -> tuple[np.ndarray, np.ndarray | None]:
    """Landmarks (and blendshapes, when computed) of the largest face, or NaN rows when there
    is none."""
    if not faces:
        return np.full((NUM_LANDMARKS, 3), np.nan, dtype=np.float32), None
    best = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    return best.points.astype(np.float32, copy=False), best.blendshapes


def _blend_array(rows: list[np.ndarray | None], options: LandmarkerOptions) -> np.ndarray | None:
    """(F, 52) blendshapes with NaN rows for frames without a face; ``None`` when not asked for."""
    if not options.blendshapes:
        return None
    out = np.full((len(rows), NUM_BLENDSHAPES), np.nan, np.float32)
    for i, b in enumerate(rows):
        if b is not None and len(b) == NUM_BLENDSHAPES:
            out[i] = b
    return out


def _video_fps(cap: Any) -> float | None:
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.5 <= fps <= 1000.0 else None


def _extract_video(ref: SampleRef, config: WorkerConfig) -> CachedLandmarks:
    import cv2

    cap = cv2.VideoCapture(str(ref.path))
    try:
        if not cap.isOpened():
            raise SampleFailure("cannot open video (corrupt file or unsupported codec)")
        fps = _video_fps(cap)
        ok, frame = cap.read()
        if not ok or frame is None or frame.size == 0:
            raise SampleFailure("video yields no frames")
        h, w = frame.shape[:2]
        pad = config.options.pad_fraction if max(w, h) < SMALL_VIDEO_PX else 0.0
        options = dataclasses.replace(config.options, pad_fraction=pad)
        step_ms = 1000.0 / (fps or FALLBACK_FPS)
        rows: list[np.ndarray] = []
        blends: list[np.ndarray | None] = []
        with FaceLandmarkDetector(options, running_mode="video") as detector:
            last_ts = -1
            while ok and frame is not None:
                ts = max(int(round(len(rows) * step_ms)), last_ts + 1)
                points, blend = _largest(detector.detect_for_video(frame, ts))
                rows.append(points)
                blends.append(blend)
                last_ts = ts
                if config.max_video_frames is not None and len(rows) >= config.max_video_frames:
                    break
                ok, frame = cap.read()
        return CachedLandmarks(np.stack(rows).astype(np.float32), fps, (int(w), int(h)), blendshapes=_blend_array(blends, config.options))
    finally:
        cap.release()
