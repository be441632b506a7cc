"""Finding every face in a frame: small faces, groups; and landmarks from an upscaled crop per face.

MediaPipe's Face Landmarker looks for faces in the whole frame, resized to its detector's small
input (128 x 128, BlazeFace short range), so a face that fills a small part of the frame is
lost: a person 3 m from a kiosk camera, the back row of a group photo. This module adds:

* :class:`FaceFinder`: the same BlazeFace detector (``face_detector.tflite``, read in memory
  from inside the shipped ``face_landmarker.task``, which is a zip: the model's Apache-2.0
  licence and NOTICE in ``realtime_fer/assets/landmarker/`` cover it, nothing is downloaded or
  written) run on the whole frame **and on overlapping tiles** of it, so that a small face is
  a large face in some tile; the boxes are merged without duplicates (:func:`nms`).
* :class:`CropLandmarker`: a Face Landmarker fed a square **crop around one face, resized to**
  ``crop_px`` (a 40 px face becomes a ~110 px face), whose landmarks are mapped back to frame
  pixels. In VIDEO mode the crop stays where it is while the face stays well inside it, so the
  landmarker tracks the face with its own tracking, as it does a single face in a whole frame.
* :class:`MultiFaceLandmarker`: what the pipeline calls per frame. The full-frame landmarker
  runs as it always did (``landmarker.num_faces`` faces, default 1: one close face costs what it
  cost before); the finder runs every ``interval_s`` of source time (and on the frame after a
  face was lost); each face it finds that no landmarker tracks yet gets a crop slot (up to
  ``max_faces`` faces in all), whose own VIDEO-mode landmarker follows it from then on. A crop
  face that the full-frame landmarker also finds is dropped (the full frame wins), so there are
  no duplicates.

Why a VIDEO-mode landmarker per crop slot and not ``num_faces: N`` on the full frame: with
``num_faces`` above the faces in view, MediaPipe re-runs its detector on every frame and the
landmarks of each face come from fresh detections instead of tracking, with 2-3x the
frame-to-frame jitter (see :func:`realtime_fer.pipeline.config._default_landmarker`).
"""

from __future__ import annotations

import functools
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from realtime_fer.errors import FerError
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS, FaceLandmarkDetector, FaceLandmarks, LandmarkerOptions
from realtime_fer.landmarks.model_file import find_model_file
from realtime_fer.landmarks.tracking import iou

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
#: The face detector inside ``face_landmarker.task``.
DETECTOR_MEMBER = "face_detector.tflite"


@dataclass
class FinderOptions:
    """The face-finding pass (YAML section ``finder``)."""

    enabled: bool = True
    """Look for faces the full-frame landmarker misses (small, many); ``false``: the full-frame
    landmarker alone (``landmarker.num_faces`` faces), as before."""
    max_faces: int = 6
    """Faces tracked (and scored) at once, full-frame and crop faces together. Each face beyond
    the first costs one landmarker run per frame (docs/benchmarks.md, *Every face*)."""
    interval_s: float = 2.0
    """Source seconds between two passes while faces are tracked (one also runs on the first
    frame and on the frame after a tracked face was lost); only when a face slot is free. A pass
    costs ~15 ms on a 640x360 frame (8 tiles): every 2 s that is ~3 % of the landmark stage."""
    idle_interval_s: float = 0.5
    """Source seconds between two passes while no face is tracked at all."""
    tile_fraction: float = 2.0 / 3.0
    """Tile side as a fraction of the frame's shorter side (tiles overlap by ``overlap``)."""
    min_tile_px: int = 160
    """Tiles are never smaller than this (no tiles at all when the frame is this small)."""
    overlap: float = 1.0 / 3.0
    """Overlap of neighbouring tiles, as a fraction of the tile side."""
    min_confidence: float = 0.5
    """Minimum BlazeFace score of a found face."""
    nms_iou: float = 0.3
    """Boxes overlapping more than this are one face (the higher score is kept)."""
    crop_scale: float = 2.0
    """A face's crop is this many times the detector's box (square, centred on the face)."""
    crop_px: int = 256
    """Side of the crop the landmarker gets at least (small faces are upscaled; a crop larger
    than this keeps its own size, up to 3x)."""

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError("finder.max_faces must be >= 1")
        if not self.interval_s >= 0 or not self.idle_interval_s >= 0:
            raise ValueError("finder.interval_s and finder.idle_interval_s must be >= 0")
        if not 0.1 <= self.tile_fraction <= 1.0:
            raise ValueError("finder.tile_fraction must be in [0.1, 1]")
        if not 0.0 <= self.overlap < 0.9:
            raise ValueError("finder.overlap must be in [0, 0.9)")
        if not 0.0 < self.min_confidence <= 1.0 or not 0.0 < self.nms_iou <= 1.0:
            raise ValueError("finder.min_confidence and finder.nms_iou must be in (0, 1]")
        if self.crop_scale < 1.0 or self.crop_px < 64 or self.min_tile_px < 32:
            raise ValueError("finder.crop_scale must be >= 1, crop_px >= 64, min_tile_px >= 32")


# -- geometry ------------------------------------------------------------------------------
def same_face(a: Box, b: Box, threshold: float = 0.3) -> bool:
    """Two boxes are one face: they overlap by ``threshold`` IoU, or one's centre lies inside
    the other (a detector box and a landmark extent of one face differ in size)."""
    if iou(a, b) >= threshold:
        return True
    for p, q in ((a, b), (b, a)):
        cx, cy = (p[0] + p[2]) / 2.0, (p[1] + p[3]) / 2.0
        if q[0] <= cx <= q[2] and q[1] <= cy <= q[3]:
            return True
    return False


def nms(boxes: Sequence[Box], scores: Sequence[float], threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression (highest score first); a box
    that is :func:`same_face` as a kept one is dropped."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        if all(not same_face(boxes[i], boxes[k], threshold) for k in kept):
            kept.append(i)
    return kept


def tiles(width: int, height: int, options: FinderOptions) -> list[tuple[int, int, int]]:
    """Square tiles ``(x0, y0, side)`` covering the frame with the configured overlap (none when
    the frame is no larger than one tile)."""
    side = int(round(max(options.min_tile_px, options.tile_fraction * min(width, height))))
    if side >= max(width, height):
        return []
    side = min(side, width, height)
    stride = max(1.0, side * (1.0 - options.overlap))

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = int(math.ceil((length - side) / stride)) + 1
        return [int(round(i * (length - side) / (n - 1))) for i in range(n)]

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def crop_for(box: Box, scale: float) -> tuple[float, float, float]:
    """The square crop ``(x0, y0, side)`` of ``scale`` times ``box``, centred on it."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    side = max(box[2] - box[0], box[3] - box[1], 1.0) * scale
    return cx - side / 2.0, cy - side / 2.0, side


def warp_crop(image: np.ndarray, crop: tuple[float, float, float], size: int) -> np.ndarray:
    """``crop`` of ``image`` resized to ``size`` x ``size`` (black outside the frame)."""
    import cv2

    x0, y0, side = crop
    s = size / side
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], dtype=np.float64)
    interp = cv2.INTER_LINEAR if s >= 1.0 else cv2.INTER_AREA
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_frame(face: FaceLandmarks, crop: tuple[float, float, float], size: int) -> FaceLandmarks:
    """``face`` (pixels of the ``size`` crop) in pixels of the frame."""
    x0, y0, side = crop
    k = side / size
    pts = face.points.copy()
    pts[:, 0] = pts[:, 0] * k + x0
    pts[:, 1] = pts[:, 1] * k + y0
    pts[:, 2] = pts[:, 2] * k
    mesh = pts[:NUM_MESH_LANDMARKS]
    bbox = (float(mesh[:, 0].min()), float(mesh[:, 1].min()), float(mesh[:, 0].max()), float(mesh[:, 1].max()))
    return FaceLandmarks(points=pts, bbox=bbox, blendshapes=face.blendshapes, transform=face.transform, extras={**face.extras, "crop": crop})


# -- the detector ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def detector_model_bytes(task_path: Path) -> bytes:
    """``face_detector.tflite`` read from inside the ``face_landmarker.task`` zip (in memory)."""
    try:
        with zipfile.ZipFile(task_path) as z:
            return z.read(DETECTOR_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise FerError(f"cannot read {DETECTOR_MEMBER} from {task_path}: {exc}") from None


class FaceFinder:
    """BlazeFace (IMAGE mode) on the whole frame and on overlapping tiles; merged boxes.

    Args:
        options: tiling, thresholds.
        landmarker: whose model file holds the detector (``model_path``, ``verify_model``).
    """

    def __init__(self, options: FinderOptions | None = None, landmarker: LandmarkerOptions | None = None) -> None:
        from realtime_fer.landmarks.mediapipe_import import import_vision

        self.options = options or FinderOptions()
        lm = landmarker or LandmarkerOptions()
        mp, mp_tasks, vision = import_vision()
        self._mp = mp
        model = detector_model_bytes(find_model_file(lm.model_path, verify=lm.verify_model).resolve())
        try:
            self._detector = vision.FaceDetector.create_from_options(
                vision.FaceDetectorOptions(
                    base_options=mp_tasks.BaseOptions(model_asset_buffer=model),
                    running_mode=vision.RunningMode.IMAGE,
                    min_detection_confidence=self.options.min_confidence,
                )
            )
        except (RuntimeError, ValueError) as exc:
            raise FerError(f"cannot create the MediaPipe face detector: {exc}") from None
        self.passes = 0
        """Calls of :meth:`find` so far."""
        self.detector_calls = 0
        """Detector runs so far (the whole frame and each tile)."""

    def close(self) -> None:
        detector = getattr(self, "_detector", None)
        if detector is not None:
            detector.close()
            self._detector = None

    def __del__(self) -> None:  # close before interpreter shutdown tears MediaPipe down
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at garbage collection
            pass

    def _detect(self, rgb: np.ndarray, x0: int, y0: int, out_boxes: list[Box], out_scores: list[float]) -> None:
        self.detector_calls += 1
        result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        for d in result.detections:
            b = d.bounding_box
            out_boxes.append((float(b.origin_x + x0), float(b.origin_y + y0), float(b.origin_x + b.width + x0), float(b.origin_y + b.height + y0)))
            out_scores.append(float(d.categories[0].score) if d.categories else 0.0)

    def find(self, image_bgr: np.ndarray, *, full_frame: bool = True) -> list[tuple[Box, float]]:
        """Faces in ``image_bgr`` (HxWx3 BGR): ``(box, score)`` in frame pixels, best first.

        ``full_frame=False`` skips the whole-frame detector run (when a full-frame landmarker
        already looks at the whole frame)."""
        import cv2

        if self._detector is None:
            raise FerError("face finder is closed")
        self.passes += 1
        if image_bgr.ndim == 2:
            rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2RGB if image_bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        boxes: list[Box] = []
        scores: list[float] = []
        grid = tiles(w, h, self.options)
        if full_frame or not grid:
            self._detect(rgb, 0, 0, boxes, scores)
        for x0, y0, side in grid:
            self._detect(rgb[y0 : y0 + side, x0 : x0 + side], x0, y0, boxes, scores)
        keep = nms(boxes, scores, self.options.nms_iou)
        return [(boxes[i], scores[i]) for i in keep]


# -- one face through a crop ---------------------------------------------------------------
class CropLandmarker:
    """A single-face landmarker on a crop around one face; landmarks in frame pixels.

    In VIDEO mode (:meth:`track`) the crop is kept while the face stays near its centre at about
    the same size, so that MediaPipe tracks the face from frame to frame; it is moved only when
    the face drifts (``recentre`` of the crop side) or changes size by more than 25 %.
    """

    def __init__(self, options: LandmarkerOptions, finder: FinderOptions, running_mode: Literal["image", "video"] = "video", detector: FaceLandmarkDetector | None = None) -> None:
        import dataclasses

        self.finder = finder
        self.detector = detector or FaceLandmarkDetector(dataclasses.replace(options, num_faces=1, pad_fraction=0.0), running_mode=running_mode)
        self.crop: tuple[float, float, float] | None = None
        self.misses = 0
        self.recentre = 0.15
        self.last_timestamp_ms = -1
        """The last VIDEO-mode timestamp given to the landmarker (one frame, one run)."""

    def close(self) -> None:
        self.detector.close()

    def start(self, box: Box) -> None:
        """Follow the face in ``box`` (a detector box or a landmark extent) from the next frame."""
        self.crop = crop_for(box, self.finder.crop_scale)
        self.misses = 0

    def stop(self) -> None:
        self.crop = None
        self.misses = 0

    @property
    def active(self) -> bool:
        return self.crop is not None

    def _size(self) -> int:
        """Side of the crop as given to the landmarker: ``crop_px``, or the crop's own side
        (up to 3 x ``crop_px``) when that is larger, so that a large face is never shrunk."""
        assert self.crop is not None
        return int(min(max(self.finder.crop_px, round(self.crop[2])), 3 * self.finder.crop_px))

    def _landmark(self, image: np.ndarray, timestamp_ms: int | None) -> FaceLandmarks | None:
        assert self.crop is not None
        size = self._size()
        patch = warp_crop(image, self.crop, size)
        faces = self.detector.detect(patch) if timestamp_ms is None else self.detector.detect_for_video(patch, timestamp_ms)
        if not faces:
            return None
        return to_frame(faces[0], self.crop, size)

    def once(self, image: np.ndarray, box: Box) -> FaceLandmarks | None:
        """IMAGE mode: the face in ``box`` of a still."""
        self.start(box)
        try:
            return self._landmark(image, None)
        finally:
            self.stop()

    def track(self, image: np.ndarray, timestamp_ms: int) -> FaceLandmarks | None:
        """VIDEO mode: the followed face in this frame (``None``: not found, ``misses`` counts)."""
        self.last_timestamp_ms = timestamp_ms
        face = self._landmark(image, timestamp_ms)
        if face is None:
            self.misses += 1
            return None
        self.misses = 0
        x0, y0, side = self.crop  # type: ignore[misc]
        bx = face.bbox
        want = crop_for(bx, self.finder.crop_scale * 0.75)  # a landmark extent is ~3/4 of a detector box
        dx = abs((bx[0] + bx[2]) / 2.0 - (x0 + side / 2.0))
        dy = abs((bx[1] + bx[3]) / 2.0 - (y0 + side / 2.0))
        if max(dx, dy) > self.recentre * side or not 0.8 <= want[2] / side <= 1.25:
            self.crop = want
        return face


# -- every face, per frame -------------------------------------------------------------------
class MultiFaceLandmarker:
    """The full-frame landmarker plus the finder and a crop slot per extra face (VIDEO mode).

    Args:
        primary: the full-frame landmarker (VIDEO mode); owned (closed by :meth:`close`).
        options: the finder's options (``max_faces`` faces in all).
        max_missed: a crop slot is freed after this many frames without its face.
    """

    def __init__(self, primary: FaceLandmarkDetector, options: FinderOptions, max_missed: int = 2) -> None:
        if primary.running_mode != "video":
            raise ValueError("MultiFaceLandmarker needs a VIDEO-mode landmarker")
        self.primary = primary
        self.options = options
        self.max_missed = max_missed
        self.finder = FaceFinder(options, primary.options)
        n_slots = max(0, options.max_faces - primary.options.num_faces)
        self._slots: list[CropLandmarker | None] = [None] * n_slots  # made on first use
        self._last_pass_ms: int | None = None
        self._pass_due = True
        self._last_primary = 0

    @property
    def delegate(self) -> str:
        return self.primary.delegate

    @property
    def running_mode(self) -> str:
        return self.primary.running_mode

    @property
    def tracked(self) -> int:
        """Faces followed through crops now."""
        return sum(1 for s in self._slots if s is not None and s.active)

    def close(self) -> None:
        self.primary.close()
        self.finder.close()
        for s in self._slots:
            if s is not None:
                s.close()

    def _slot(self, i: int) -> CropLandmarker:
        s = self._slots[i]
        if s is None:
            s = self._slots[i] = CropLandmarker(self.primary.options, self.options, "video")
        return s

    def detect_for_video(self, image: np.ndarray, timestamp_ms: int) -> list[FaceLandmarks]:
        faces = self.primary.detect_for_video(image, timestamp_ms)
        lost = len(faces) < self._last_primary
        self._last_primary = len(faces)
        for i, s in enumerate(self._slots):
            if s is None or not s.active:
                continue
            face = s.track(image, timestamp_ms)
            if face is None:
                if s.misses > self.max_missed:
                    s.stop()
                    lost = True
                continue
            if any(same_face(face.bbox, f.bbox) for f in faces):
                s.stop()  # the full frame (or another slot) has this face: no duplicate
                continue
            faces.append(face)
        # a slot that ran on this frame (and was freed) waits for the next: timestamps must increase
        free = [i for i, s in enumerate(self._slots) if s is None or (not s.active and s.last_timestamp_ms < timestamp_ms)]
        if lost:
            self._pass_due = True
        interval = self.options.interval_s if faces else self.options.idle_interval_s
        due = self._pass_due or self._last_pass_ms is None or timestamp_ms - self._last_pass_ms >= interval * 1000.0
        if free and due:
            self._pass_due = False
            self._last_pass_ms = timestamp_ms
            for box, _ in self.finder.find(image, full_frame=False):
                if not free:
                    break
                if any(same_face(box, f.bbox) for f in faces):
                    continue
                s = self._slot(free.pop(0))  # used on this frame either way (timestamps)
                s.start(box)
                face = s.track(image, timestamp_ms)
                if face is None or any(same_face(face.bbox, f.bbox) for f in faces):
                    s.stop()
                    continue
                faces.append(face)
        return faces


def find_faces_in_image(image: np.ndarray, detector: FaceLandmarkDetector, finder: FaceFinder, cropper: CropLandmarker, max_faces: int | None = None) -> list[FaceLandmarks]:
    """IMAGE mode: the full-image landmarker's faces plus those the finder adds (each landmarked
    on an upscaled crop), without duplicates."""
    faces = detector.detect(image)
    for box, _ in finder.find(image, full_frame=True):
        if max_faces is not None and len(faces) >= max_faces:
            break
        if any(same_face(box, f.bbox) for f in faces):
            continue
        face = cropper.once(image, box)
        if face is not None and not any(same_face(face.bbox, f.bbox) for f in faces):
            faces.append(face)
    return faces
