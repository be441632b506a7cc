"""Our messages as ROS4HRI (REP-155) messages: a pure mapping, no ROS needed.

Per face, REP-155 gives a namespace ``/humans/faces/<id>/`` and the list of tracked faces on
``/humans/faces/tracked``. From each :class:`~realtime_fer.publish.Prediction` this module makes

* ``/humans/faces/<id>/roi``: ``hri_msgs/NormalizedRegionOfInterest2D`` (the box over the image
  size; needs ``image_size``),
* ``/humans/faces/<id>/expression``: ``hri_msgs/Expression`` (our top emotion onto the
  message's constants, :data:`EXPRESSIONS`; valence, arousal; confidence),
* ``/humans/faces/<id>/facs``: ``hri_msgs/FacialActionUnits`` (needs ``action_units``),

and from predictions and :class:`~realtime_fer.publish.Status` events it keeps the set of
tracked faces, publishing ``/humans/faces/tracked`` (``hri_msgs/IdsList``) when it changes.

A mapped message is a :class:`RosMessage`: topic, ROS 2 type name and the message's fields as
nested plain data shaped like the ``.msg`` definition (``{"header": {"stamp": {"sec": ...,
"nanosec": ...}, "frame_id": ...}, "expression": "happy", ...}``), so that the rclpy node and the
rosbags serialisation of the tests build their own message objects from the same fields.
docs/ros4hri.md has the field table.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

from realtime_fer.describe import ACTION_UNITS, valence_arousal
from realtime_fer.publish.schema import FrameImage, Prediction, Status

log = logging.getLogger(__name__)

#: ROS 2 type names of the messages the bridge publishes (package ``hri_msgs``).
MSG_TYPES = {
    "expression": "hri_msgs/msg/Expression",
    "roi": "hri_msgs/msg/NormalizedRegionOfInterest2D",
    "facs": "hri_msgs/msg/FacialActionUnits",
    "tracked": "hri_msgs/msg/IdsList",
}

#: Our emotions onto ``hri_msgs/Expression``'s constants. ``contempt`` has no constant: it is
#: published as :attr:`Ros4hriOptions.contempt_as` (default ``"disgusted"``, docs/ros4hri.md).
EXPRESSIONS: dict[str, str] = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
}

#: The values of ``hri_msgs/Expression``'s string constants (hri_msgs 0.8.0, msg/Expression.msg).
EXPRESSION_CONSTANTS: tuple[str, ...] = (
    "neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading", "vulnerable",
    "despaired", "guilty", "disappointed", "embarrassed", "horrified", "skeptical", "annoyed", "furious",
    "suspicious", "rejected", "bored", "tired", "asleep", "confused", "amazed", "excited",
)  # fmt: skip

#: Length of ``FacialActionUnits.intensity`` / ``.confidence`` (indexed by AU code).
N_FACS = 99

TRACKED_TOPIC = "/humans/faces/tracked"
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class Ros4hriOptions:
    """Options of the mapping (flags of ``realtime-fer bridge ros4hri``)."""

    contempt_as: str = "disgusted"
    """The ``Expression`` constant published for ``contempt``, which the message lacks."""
    frame_id: str | None = None
    """``header.frame_id`` of every message; ``None``: the stream id (the camera's name)."""

    def __post_init__(self) -> None:
        if self.contempt_as not in EXPRESSION_CONSTANTS:
            raise ValueError(f"contempt_as must be one of hri_msgs/Expression's constants ({', '.join(EXPRESSION_CONSTANTS)}), got {self.contempt_as!r}")


@dataclass(frozen=True)
class RosMessage:
    """One message to publish."""

    topic: str
    type: str
    """ROS 2 type name, ``hri_msgs/msg/Expression``."""
    fields: dict[str, Any]
    """The message's fields as nested plain data (arrays as lists)."""


@dataclass
class Mapped:
    """What one of our messages maps to."""

    messages: list[RosMessage] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Face ids no longer tracked: their ``/humans/faces/<id>/`` topics can be retired."""


def face_id(stream: str, face: int) -> str:
    """The ROS4HRI face id of our face ``face`` of stream ``stream``: ``<stream>_f<face>``.

    REP-155 ids are arbitrary unique strings; ours must also be a valid ROS 2 topic-name token
    (letters, digits and single underscores, not starting with a digit), so the stream id's
    other characters become ``_`` and a stream id starting with a digit gets an ``s`` prefix."""
    token = re.sub("_+", "_", _TOKEN_BAD.sub("_", stream)).strip("_")
    if not token or token[0].isdigit():
        token = "s" + token
    return f"{token}_f{face}" if face >= 0 else f"{token}_fm{-face}"


def stamp(t: float) -> dict[str, int]:
    """``builtin_interfaces/Time`` fields of a Unix time in seconds."""
    sec = math.floor(t)
    nanosec = min(int(round((t - sec) * 1e9)), 999_999_999)
    return {"sec": int(sec), "nanosec": nanosec}


def header(t: float, frame_id: str) -> dict[str, Any]:
    """``std_msgs/Header`` fields."""
    return {"stamp": stamp(t), "frame_id": frame_id}


def _unit(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


class Ros4hriMapper:
    """Maps our messages, one at a time, and keeps the set of tracked faces.

    Args:
        options: the mapping options.
    """

    def __init__(self, options: Ros4hriOptions | None = None) -> None:
        self.options = options or Ros4hriOptions()
        self._expressions = {**EXPRESSIONS, "contempt": self.options.contempt_as}
        self._tracked: dict[str, set[str]] = {}
        """stream -> ids of its tracked faces."""
        self._unknown: set[str] = set()
        self._last_t = 0.0

    # -- state --------------------------------------------------------------------------------
    @property
    def tracked(self) -> list[str]:
        """Ids of every tracked face, all streams, sorted."""
        return sorted(i for ids in self._tracked.values() for i in ids)

    def tracked_message(self, t: float | None = None) -> RosMessage:
        """``/humans/faces/tracked`` now (stamped ``t``, default: the newest message's time)."""
        t = self._last_t if t is None else t
        return RosMessage(TRACKED_TOPIC, MSG_TYPES["tracked"], {"header": header(t, self.options.frame_id or ""), "ids": self.tracked})

    # -- mapping ------------------------------------------------------------------------------
    def map(self, msg: Union[Prediction, Status, FrameImage]) -> Mapped:
        """The ROS messages one of our messages becomes (``/humans/faces/tracked`` included
        when the set of tracked faces changed); none for a frame image (``--publish-frames``)."""
        if isinstance(msg, Prediction):
            return self._prediction(msg)
        if isinstance(msg, Status):
            return self._status(msg)
        if isinstance(msg, FrameImage):  # a recognizer that also feeds a live page: no ROS4HRI topic
            return Mapped()
        raise TypeError(f"expected a Prediction, Status or FrameImage, got {type(msg).__name__}")

    def _prediction(self, pred: Prediction) -> Mapped:
        self._last_t = max(self._last_t, pred.t_capture)
        fid = face_id(pred.stream, pred.face)
        out = Mapped()
        ids = self._tracked.setdefault(pred.stream, set())
        if fid not in ids:
            ids.add(fid)
            out.messages.append(self.tracked_message(pred.t_capture))
        frame_id = self.options.frame_id or pred.stream
        base = f"/humans/faces/{fid}"
        roi = self.roi_fields(pred, frame_id)
        if roi is not None:
            out.messages.append(RosMessage(f"{base}/roi", MSG_TYPES["roi"], roi))
        expression = self.expression_fields(pred, frame_id)
        if expression is not None:
            out.messages.append(RosMessage(f"{base}/expression", MSG_TYPES["expression"], expression))
        facs = self.facs_fields(pred, frame_id)
        if facs is not None:
            out.messages.append(RosMessage(f"{base}/facs", MSG_TYPES["facs"], facs))
        return out

    def _status(self, status: Status) -> Mapped:
        self._last_t = max(self._last_t, status.timestamp)
        ids = self._tracked.setdefault(status.stream, set())
        before = set(ids)
        if status.event == "face_found" and status.face is not None:
            ids.add(face_id(status.stream, status.face))
        elif status.event == "face_lost" and status.face is not None:
            ids.discard(face_id(status.stream, status.face))
        elif status.event in ("started", "ended", "source_lost", "no_face"):
            ids.clear()  # a restarted or stopped stream, or one with no face in view
        out = Mapped(removed=sorted(before - ids))
        if ids != before:
            out.messages.append(self.tracked_message(status.timestamp))
        return out

    def expression_fields(self, pred: Prediction, frame_id: str) -> dict[str, Any] | None:
        """``hri_msgs/Expression`` of a prediction; ``None`` for a top emotion with no constant
        (a bundle with other labels; logged once per label)."""
        expression = self._expressions.get(pred.top)
        if expression is None:
            if pred.top not in self._unknown:
                self._unknown.add(pred.top)
                log.warning("emotion %r has no hri_msgs/Expression constant: its expressions are not published", pred.top)
            return None
        decided_on = pred.smoothed if pred.smoothed is not None else pred.probabilities
        if pred.valence is not None and pred.arousal is not None:
            valence, arousal = pred.valence, pred.arousal
        else:  # an older producer: derive them here, as the recognizer does
            valence, arousal = valence_arousal(decided_on)
        return {
            "header": header(pred.t_capture, frame_id),
            "expression": expression,
            "valence": max(-1.0, min(1.0, float(valence))),
            "arousal": max(-1.0, min(1.0, float(arousal))),
            "confidence": _unit(decided_on.get(pred.top, 0.0)),
        }

    @staticmethod
    def roi_fields(pred: Prediction, frame_id: str) -> dict[str, Any] | None:
        """``hri_msgs/NormalizedRegionOfInterest2D`` of the face box; ``None`` without the
        image size. ``c`` is 1.0: the recognizer publishes only faces the landmarker tracks and
        reports no detection score."""
        if not pred.image_size or pred.image_size[0] <= 0 or pred.image_size[1] <= 0:
            return None
        w, h = pred.image_size
        x0, y0, x1, y1 = pred.bbox
        return {
            "header": header(pred.t_capture, frame_id),
            "xmin": _unit(x0 / w),
            "ymin": _unit(y0 / h),
            "xmax": _unit(x1 / w),
            "ymax": _unit(y1 / h),
            "c": 1.0,
        }

    @staticmethod
    def facs_fields(pred: Prediction, frame_id: str) -> dict[str, Any] | None:
        """``hri_msgs/FacialActionUnits`` of the approximate action units; ``None`` without
        them. ``intensity[code]`` is the AU's intensity; ``confidence[code]`` is 1.0 for the AUs
        we estimate and 0.0 for the others (it marks which entries are estimated; the estimates
        are approximate, docs/describe.md)."""
        if not pred.action_units:
            return None
        intensity = [0.0] * N_FACS
        confidence = [0.0] * N_FACS
        for au in ACTION_UNITS:
            value = pred.action_units.get(au.key)
            if value is not None and au.code < N_FACS:
                intensity[au.code] = _unit(value)
                confidence[au.code] = 1.0
        return {"header": header(pred.t_capture, frame_id), "intensity": intensity, "confidence": confidence}
