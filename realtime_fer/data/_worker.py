"""Landmark extraction of single samples, run inside worker processes.

Each worker holds one IMAGE-mode :class:`~realtime_fer.landmarks.FaceLandmarkDetector`, made
on first use and reused for every image and sequence frame it processes. Videos get a fresh
VIDEO-mode detector each (MediaPipe's tracking state and timestamps belong to one stream).

Sequences (CK+ apex frames) run in IMAGE mode frame by frame: they are a handful of stills
without a frame rate, and detecting each from scratch matches how stills are processed, so a
sequence's frames are comparable with the image samples of the same dataset.

The same per-batch work runs on Dask workers (:func:`remote_batch`, submitted by
:class:`~realtime_fer.data.executors.DaskExecutor`): the detector is the same module-global one,
so each Dask worker process holds one, made on first use; batches of one process run one at a
time (a lock), whatever ``--nthreads`` the worker has.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
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
_finder: Any = None
"""``(FaceFinder, CropLandmarker)`` for ``options.find_faces``, made on first use."""


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


class WorkerEnvironmentError(RuntimeError):
    """A Dask worker would not compute what this client would (another model or library
    version), or cannot read a sample's files; raised on the worker, re-raised on the client."""


#: One batch at a time per process on Dask workers (the detector is not thread-safe).
_remote_lock = threading.Lock()
#: Environments already checked in this process (``expected`` dicts as sorted item tuples).
_remote_checked: set[tuple[tuple[str, str], ...]] = set()
#: Samples :func:`remote_batch` extracted in this process.
_remote_samples = 0


def remote_samples() -> int:
    """How many samples :func:`remote_batch` extracted in this process (for monitoring, e.g.
    ``client.run(remote_samples)`` on a Dask cluster)."""
    return _remote_samples


def environment(options: LandmarkerOptions) -> dict[str, str]:
    """What must agree between the client and a worker for their landmarks to be the same (and
    part of the cache key): library versions, the landmarker model's SHA-256 and the package's
    version (the extraction code)."""
    import importlib.metadata

    import cv2

    from realtime_fer import __version__
    from realtime_fer.landmarks.model_file import find_model_file, sha256_of

    return {
        "realtime_fer": __version__,
        "mediapipe": importlib.metadata.version("mediapipe"),
        "opencv": cv2.__version__,
        "model_sha256": sha256_of(find_model_file(options.model_path, verify=options.verify_model).resolve()),
    }


def remote_batch(items: list[tuple[SampleRef, list[bytes] | None]], config: WorkerConfig, expected: dict[str, str]) -> list[tuple[str, Any]]:
    """:func:`run_batch` on a Dask worker. ``items`` are the samples with, when storage is not
    shared, the bytes of their files (else ``None``: the worker reads the paths). ``expected`` is
    the client's :func:`environment`; a worker whose own differs raises
    :class:`WorkerEnvironmentError` instead of computing other landmarks under the same cache key.
    So does a worker that cannot see a sample's file: a missing file there is not the sample's
    fault and must not be cached as a decode failure.
    """
    import socket

    global _remote_samples
    with _remote_lock:
        key = tuple(sorted(expected.items()))
        if key not in _remote_checked:
            mine = environment(config.options)
            diff = {k: (v, mine.get(k)) for k, v in expected.items() if mine.get(k) != v}
            if diff:
                what = ", ".join(f"{k} {theirs} here vs {ours} on the client" for k, (ours, theirs) in diff.items())
                raise WorkerEnvironmentError(f"worker {socket.gethostname()} differs from the client: {what}")
            _remote_checked.add(key)
        results: list[tuple[str, Any]] = []
        for ref, blobs in items:
            if blobs is None:
                missing = [f for f in ref.files() if not os.path.isfile(f)]
                if missing:
                    raise WorkerEnvironmentError(
                        f"worker {socket.gethostname()} cannot see {missing[0]} (storage not shared with the workers? then send the files: --send-files)"
                    )
                results.extend(run_batch([ref], config))
                continue
            with tempfile.TemporaryDirectory(prefix="fer_sample_") as tmp:
                files = [Path(tmp) / f"{i:05d}{Path(f).suffix}" for i, f in enumerate(ref.files())]
                for f, blob in zip(files, blobs):
                    f.write_bytes(blob)
                local = dataclasses.replace(ref, path=Path(tmp), frames=tuple(files)) if ref.kind == "sequence" else dataclasses.replace(ref, path=files[0])
                results.extend(run_batch([local], config))
        _remote_samples += len(results)
        return results


def close_detectors() -> None:
    """Close the cached IMAGE-mode detector (for in-process use)."""
    global _image_detector, _finder
    if _image_detector is not None:
        _image_detector.close()
        _image_detector = None
    if _finder is not None:
        _finder[0].close()
        _finder[1].close()
        _finder = None


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
        faces = detector.detect(image)
        if not faces and config.options.find_faces:
            faces = _find_small_face(image, config.options)
        points, blend = _largest(faces)
        rows.append(points)
        blends.append(blend)
    return CachedLandmarks(np.stack(rows).astype(np.float32), None, size, blendshapes=_blend_array(blends, config.options))


def _get_image_detector(options: LandmarkerOptions) -> FaceLandmarkDetector:
    global _image_detector
    if _image_detector is None or _image_detector.options != options:
        close_detectors()
        _image_detector = FaceLandmarkDetector(options, running_mode="image")
    return _image_detector


def _find_small_face(image: np.ndarray, options: LandmarkerOptions) -> list[FaceLandmarks]:
    """The faces the finder sees in ``image`` (padded as the landmarker pads it), each landmarked
    on an upscaled crop of its own, in pixels of ``image``."""
    import cv2

    from realtime_fer.landmarks.finder import CropLandmarker, FaceFinder, FinderOptions

    global _finder
    if _finder is None:
        fo = FinderOptions()
        _finder = (FaceFinder(fo, options), CropLandmarker(options, fo, "image"))
    finder, cropper = _finder
    pad = int(round(options.pad_fraction * max(image.shape[:2])))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)) if pad else image
    faces = []
    for box, _ in finder.find(padded):
        face = cropper.once(padded, box)
        if face is not None:
            face.points[:, :2] -= pad
            x0, y0, x1, y1 = face.bbox
            face.bbox = (x0 - pad, y0 - pad, x1 - pad, y1 - pad)
            faces.append(face)
    return faces


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
