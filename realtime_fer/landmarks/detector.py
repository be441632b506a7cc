"""A thin, typed wrapper over MediaPipe's Face Landmarker (Tasks API).

Modelled on MediaPipe's own options objects: build a :class:`LandmarkerOptions`, open a
:class:`FaceLandmarkDetector`, and call :meth:`~FaceLandmarkDetector.detect` (IMAGE mode) or
:meth:`~FaceLandmarkDetector.detect_for_video` (VIDEO mode, monotonically increasing
timestamps). Results come back as :class:`FaceLandmarks` in *pixel* units of the image that
was passed in (x, y in pixels; z in the same pixel scale as x), so non-square images keep their
true geometry.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np

from realtime_fer.errors import FerError
from realtime_fer.landmarks.model_file import find_model_file

log = logging.getLogger(__name__)

NUM_LANDMARKS = 478
#: The 468 face-mesh landmarks (the 10 iris points, 468..477, are not used as features).
NUM_MESH_LANDMARKS = 468
#: MediaPipe's blendshape categories, in the order the Face Landmarker reports them
#: (``LandmarkerOptions.blendshapes``; Apple ARKit names, plus ``_neutral``).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    '_neutral', 'browDownLeft', 'browDownRight', 'browInnerUp', 'browOuterUpLeft', 'browOuterUpRight',
    'cheekPuff', 'cheekSquintLeft', 'cheekSquintRight', 'eyeBlinkLeft', 'eyeBlinkRight', 'eyeLookDownLeft',
    'eyeLookDownRight', 'eyeLookInLeft', 'eyeLookInRight', 'eyeLookOutLeft', 'eyeLookOutRight', 'eyeLookUpLeft',
    'eyeLookUpRight', 'eyeSquintLeft', 'eyeSquintRight', 'eyeWideLeft', 'eyeWideRight', 'jawForward',
    'jawLeft', 'jawOpen', 'jawRight', 'mouthClose', 'mouthDimpleLeft', 'mouthDimpleRight',
    'mouthFrownLeft', 'mouthFrownRight', 'mouthFunnel', 'mouthLeft', 'mouthLowerDownLeft', 'mouthLowerDownRight',
    'mouthPressLeft', 'mouthPressRight', 'mouthPucker', 'mouthRight', 'mouthRollLower', 'mouthRollUpper',
    'mouthShrugLower', 'mouthShrugUpper', 'mouthSmileLeft', 'mouthSmileRight', 'mouthStretchLeft', 'mouthStretchRight',
    'mouthUpperUpLeft', 'mouthUpperUpRight', 'noseSneerLeft', 'noseSneerRight',
)
NUM_BLENDSHAPES = len(BLENDSHAPE_NAMES)


@dataclass
class LandmarkerOptions:
    """Options for :class:`FaceLandmarkDetector` (YAML section ``landmarker``)."""

    model_path: str | None = None
    """Path to ``face_landmarker.task``; default: ``$REALTIME_FER_LANDMARKER_MODEL``, then the copy in the package."""
    verify_model: bool = True
    """Check the model's SHA-256 against the pinned float16 v1 model."""
    num_faces: int = 1
    delegate: Literal["cpu", "gpu"] = "cpu"
    """``gpu`` tries MediaPipe's GPU delegate and falls back to CPU (one log line) if unusable."""
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    pad_fraction: float = 0.0
    """Black border added on every side, as a fraction of the longer image side. Tightly
    cropped faces need it: 0.25 raised detection from 83% to 93% on a 150-image FER2013 sample
    and from 91% to 97% on RAF-DB (tools/padding_check in the issue notes). 0 for camera frames."""
    blendshapes: bool = False
    transformation_matrix: bool = False
    find_faces: bool = False
    """Dataset extraction (IMAGE mode): when the landmarker finds no face in the whole image,
    look for one with the face finder (:mod:`realtime_fer.landmarks.finder`: BlazeFace on tiles)
    and landmark an upscaled crop around it, so that small faces are not dropped. The live
    pipeline has its own ``finder`` section instead."""

    def __post_init__(self) -> None:
        if self.num_faces < 1:
            raise ValueError("num_faces must be >= 1")
        if not 0.0 <= self.pad_fraction <= 2.0:
            raise ValueError("pad_fraction must be in [0, 2]")


@dataclass
class FaceLandmarks:
    """One detected face."""

    points: np.ndarray
    """(478, 3) float32: x, y in pixels of the input image, z in the same pixel scale."""
    bbox: tuple[float, float, float, float]
    """(x0, y0, x1, y1) in pixels, the extent of the 468 mesh landmarks."""
    blendshapes: np.ndarray | None = None
    """(52,) blendshape scores when requested."""
    transform: np.ndarray | None = None
    """(4, 4) facial transformation matrix (canonical face -> camera) when requested."""
    extras: dict = field(default_factory=dict)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ output on fd 2 (MediaPipe prints a stack trace when the GPU is unusable)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_PENDING_CLOSE: list[object] = []
"""MediaPipe graphs of detectors collected without :meth:`FaceLandmarkDetector.close`."""
_PENDING_LOCK = threading.Lock()


def _close_quietly(landmarker: object) -> None:
    try:
        landmarker.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - best effort after garbage collection
        pass


def close_pending() -> None:
    """Close the MediaPipe graphs of detectors that were garbage-collected without being
    closed (called when a detector is created and at exit)."""
    with _PENDING_LOCK:
        pending = list(_PENDING_CLOSE)
        _PENDING_CLOSE.clear()
    for landmarker in pending:
        _close_quietly(landmarker)


atexit.register(close_pending)


class FaceLandmarkDetector:
    """MediaPipe Face Landmarker in IMAGE or VIDEO running mode.

    Use as a context manager, or call :meth:`close`. One instance serves one running mode:
    the first call decides (``detect`` -> IMAGE, ``detect_for_video`` -> VIDEO) unless
    ``running_mode`` is given.
    """

    def __init__(self, options: LandmarkerOptions | None = None, running_mode: Literal["image", "video"] = "image") -> None:
        close_pending()
        # Imported here so that importing realtime_fer stays cheap (and without matplotlib).
        from realtime_fer.landmarks.mediapipe_import import import_vision

        mp, mp_tasks, vision = import_vision()

        self.options = options or LandmarkerOptions()
        self.running_mode = running_mode
        self._mp = mp
        model = find_model_file(self.options.model_path, verify=self.options.verify_model)
        mode = vision.RunningMode.VIDEO if running_mode == "video" else vision.RunningMode.IMAGE

        def make(delegate: "mp_tasks.BaseOptions.Delegate") -> "vision.FaceLandmarker":
            o = self.options
            return vision.FaceLandmarker.create_from_options(
                vision.FaceLandmarkerOptions(
                    base_options=mp_tasks.BaseOptions(model_asset_path=str(model), delegate=delegate),
                    running_mode=mode,
                    num_faces=o.num_faces,
                    min_face_detection_confidence=o.min_detection_confidence,
                    min_face_presence_confidence=o.min_presence_confidence,
                    min_tracking_confidence=o.min_tracking_confidence,
                    output_face_blendshapes=o.blendshapes,
                    output_facial_transformation_matrixes=o.transformation_matrix,
                )
            )

        self.delegate = "cpu"
        self._landmarker = None
        if self.options.delegate == "gpu":
            try:
                with _quiet_stderr():
                    self._landmarker = make(mp_tasks.BaseOptions.Delegate.GPU)
                self.delegate = "gpu"
            except (RuntimeError, ValueError) as exc:
                first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                log.warning("MediaPipe GPU delegate unusable (%s); using the CPU delegate", first)
        if self._landmarker is None:
            try:
                self._landmarker = make(mp_tasks.BaseOptions.Delegate.CPU)
            except (RuntimeError, ValueError) as exc:
                raise FerError(f"cannot create MediaPipe Face Landmarker from {model}: {exc}") from None
        log.info("face landmarker ready: %s mode, %s delegate, num_faces=%d", running_mode, self.delegate, self.options.num_faces)

    # -- context management -------------------------------------------------------------
    def close(self) -> None:
        """Release the MediaPipe graph."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "FaceLandmarkDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        landmarker = getattr(self, "_landmarker", None)
        if landmarker is None:
            return
        self._landmarker = None
        if sys.is_finalizing():
            _close_quietly(landmarker)
        else:
            # MediaPipe's close waits for its own dispatcher; a garbage collection can run this
            # anywhere (inside an import, inside an event loop), where that wait can deadlock:
            # the graph is closed at the next safe point instead (a new detector, or exit)
            with _PENDING_LOCK:
                _PENDING_CLOSE.append(landmarker)

    # -- detection ----------------------------------------------------------------------
    def detect(self, image_bgr: np.ndarray) -> list[FaceLandmarks]:
        """Detect faces in one image (IMAGE mode). ``image_bgr`` is HxWx3 uint8 BGR (OpenCV) or HxW grey."""
        if self.running_mode != "image":
            raise FerError("this detector runs in VIDEO mode; use detect_for_video()")
        mp_image, pad = self._prepare(image_bgr)
        return self._convert(self._landmarker.detect(mp_image), pad, mp_image)

    def detect_for_video(self, image_bgr: np.ndarray, timestamp_ms: int) -> list[FaceLandmarks]:
        """Detect faces in one video frame (VIDEO mode); timestamps must increase strictly."""
        if self.running_mode != "video":
            raise FerError("this detector runs in IMAGE mode; use detect()")
        mp_image, pad = self._prepare(image_bgr)
        return self._convert(self._landmarker.detect_for_video(mp_image, int(timestamp_ms)), pad, mp_image)

    def _prepare(self, image: np.ndarray) -> tuple[object, int]:
        import cv2

        if self._landmarker is None:
            raise FerError("face landmarker is closed")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or image.size == 0:
            raise FerError("expected a non-empty uint8 image (HxW grey, HxWx3 BGR or HxWx4 BGRA)")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        pad = int(round(self.options.pad_fraction * max(image.shape[:2])))
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        return mp_image, pad

    @staticmethod
    def _convert(result: object, pad: int, mp_image: object) -> list[FaceLandmarks]:
        h, w = mp_image.height, mp_image.width  # type: ignore[attr-defined]
        faces: list[FaceLandmarks] = []
        blend = getattr(result, "face_blendshapes", None) or []
        mats = getattr(result, "facial_transformation_matrixes", None) or []
        for i, lms in enumerate(result.face_landmarks):  # type: ignore[attr-defined]
            arr = np.array([(p.x, p.y, p.z) for p in lms], dtype=np.float32)
            arr[:, 0] = arr[:, 0] * w - pad
            arr[:, 1] = arr[:, 1] * h - pad
            arr[:, 2] = arr[:, 2] * w
            mesh = arr[:NUM_MESH_LANDMARKS]
            bbox = (float(mesh[:, 0].min()), float(mesh[:, 1].min()), float(mesh[:, 0].max()), float(mesh[:, 1].max()))
            faces.append(
                FaceLandmarks(
                    points=arr,
                    bbox=bbox,
                    blendshapes=np.array([c.score for c in blend[i]], dtype=np.float32) if i < len(blend) else None,
                    transform=np.asarray(mats[i], dtype=np.float32) if i < len(mats) else None,
                )
            )
        return faces
