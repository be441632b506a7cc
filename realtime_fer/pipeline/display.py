"""The ``--show`` window: face boxes, landmarks and per-emotion bars drawn over the frame, with
the face regions that drove the top emotion circled at their centres and coloured by their
attribution (red: evidence for it, blue: evidence against; the larger the circle, the larger
the |weight|).

:func:`draw_overlay` only draws (testable without a display); :class:`Display` owns the OpenCV
window. Nothing here is imported unless ``--show`` is given, so the recognizer runs headless.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Mapping, Sequence

import numpy as np

from realtime_fer.capture.frame import Frame
from realtime_fer.errors import FerError
from realtime_fer.explain.regions import face_regions
from realtime_fer.pipeline.processor import FaceResult, FrameResult
from realtime_fer.publish.schema import Prediction

log = logging.getLogger(__name__)

_BOX = (80, 220, 80)  # BGR
_POINT = (255, 200, 0)
_BAR = (200, 160, 60)
_TOP = (60, 200, 255)
_TEXT = (255, 255, 255)
_QUIT_KEYS = (ord("q"), 27)  # q, Esc
_FOR = (40, 40, 235)  # attribution > 0: pushes towards the emotion
_AGAINST = (235, 120, 40)  # attribution < 0


@functools.lru_cache(maxsize=64)
def _region_members(name: str) -> np.ndarray | None:
    """Mesh indices of a named region (None for a name the table does not know)."""
    try:
        return face_regions().indices(name)
    except KeyError:
        return None


def _mark_position(points: np.ndarray, item: dict) -> np.ndarray | None:
    """Where an attribution entry sits on the face: its landmark (schema 1, or ``detail:
    landmarks``), or the centre of its region's landmarks; None for a blendshape."""
    if "landmark" in item:
        return points[int(item["landmark"]), :2]
    members = _region_members(item["region"]) if "region" in item else None
    return None if members is None else points[members, :2].mean(axis=0)


def draw_attributions(out: np.ndarray, points: np.ndarray, prediction: Prediction) -> None:
    """Circle the top emotion's most relevant regions (from ``prediction.attributions``) at
    their centres, in place, coloured by the sign of their weight and sized by its magnitude."""
    import cv2

    entry = prediction.attributions.get(prediction.top)
    if not entry or not entry.get("top"):
        return
    marks = [(t, p) for t in entry["top"] if (p := _mark_position(points, t)) is not None]  # blendshapes have no place on the face
    if not marks:
        return
    biggest = max(abs(t["weight"]) for t, _ in marks) or 1.0
    for t, p in marks:
        x, y = (int(round(v)) for v in p)
        radius = 3 + int(round(7 * abs(t["weight"]) / biggest))
        cv2.circle(out, (x, y), radius, _FOR if t["weight"] > 0 else _AGAINST, 2, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, faces: Sequence[FaceResult], predictions: Mapping[int, Prediction], emotions: Sequence[str]) -> np.ndarray:
    """Draw boxes, landmarks and emotion bars onto a copy of ``image`` (BGR) and return it.

    Args:
        faces: the faces of this frame.
        predictions: the latest prediction of each track id (predictions arrive every ``hop_seconds``
            of source time; the bars show the most recent one).
        emotions: bar order.
    """
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    for face in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
        cv2.rectangle(out, (x0, y0), (x1, y1), _BOX, 2)
        pts = np.round(face.points[:, :2]).astype(np.int64)
        ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        out[pts[ok, 1], pts[ok, 0]] = _POINT  # one pixel per landmark, no per-point drawing call
        pred = predictions.get(face.track_id)
        label = f"face {face.track_id}" + (f": {pred.top}" if pred is not None else "")
        cv2.putText(out, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _TEXT, 1, cv2.LINE_AA)
        if pred is None:
            continue
        draw_attributions(out, face.points, pred)
        bar_x = x1 + 8 if x1 + 150 < w else max(0, x0 - 150)
        shown = pred.smoothed if pred.smoothed is not None else pred.probabilities  # what top is decided on
        for i, name in enumerate(emotions):
            p = float(shown.get(name, 0.0))
            y = y0 + 14 * i
            color = _TOP if name == pred.top else _BAR
            cv2.rectangle(out, (bar_x + 64, y + 2), (bar_x + 64 + int(80 * p), y + 11), color, -1)
            cv2.putText(out, f"{name[:8]}", (bar_x, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, _TEXT, 1, cv2.LINE_AA)
    return out


def display_available() -> bool:
    """False on Linux without an X11 or Wayland display."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Display:
    """An OpenCV window showing every processed frame with its overlay.

    Raises:
        FerError: there is no display to open a window on.
    """

    def __init__(self, emotions: Sequence[str], title: str = "realtime-fer") -> None:
        if not display_available():
            raise FerError("--show needs a display (DISPLAY/WAYLAND_DISPLAY is not set); run without --show and use `realtime-fer listen`")
        import cv2

        self._cv2 = cv2
        self.title = title
        self.emotions = list(emotions)
        self._latest: dict[int, Prediction] = {}
        try:
            # resizable, aspect kept, no toolbar or status bar (Qt builds show them otherwise)
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise FerError(f"--show cannot open a window: {str(exc).strip().splitlines()[-1]}") from None
        self._open = True
        self._sized = False

    def update(self, frame: Frame, result: FrameResult) -> bool:
        """Draw and show one frame; False when the user pressed q/Esc or closed the window."""
        if not self._open:
            return False
        cv2 = self._cv2
        for track_id in result.lost:
            self._latest.pop(track_id, None)
        for prediction in result.predictions:
            self._latest[prediction.face] = prediction
        if not self._sized:  # open at the frame's own size (the user may resize it later)
            h, w = frame.image.shape[:2]
            cv2.resizeWindow(self.title, int(w), int(h))
            self._sized = True
        cv2.imshow(self.title, draw_overlay(frame.image, result.faces, self._latest, self.emotions))
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        return key not in _QUIT_KEYS and visible

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._cv2.destroyWindow(self.title)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass
