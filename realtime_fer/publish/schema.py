"""The wire format of published messages: topics, typed messages, msgpack/JSON encoding.

Three message types travel as ZeroMQ multipart ``[topic, payload]``:

* :class:`Prediction` on ``fer.<stream>.face.<id>.`` -- one face in one frame;
* :class:`Status` on ``fer.<stream>.status.`` -- pipeline events (started, face lost, source
  lost, ...) with frame-rate and dropped-frame counts;
* :class:`FrameImage` on ``fer.<stream>.frame.`` -- a small JPEG of a processed frame, sent
  after that frame's predictions, only when the recognizer is asked to (``frames.enabled``;
  the live page of ``realtime-fer serve`` draws it).

Every topic ends with ``.`` so that a prefix subscription never matches a longer id by accident
(``fer.cam0.face.1.`` does not match ``fer.cam0.face.12.``). The payload is a map with a
``type`` (``"prediction"`` / ``"status"`` / ``"frame"``) and a ``schema`` version, encoded as msgpack (default)
or JSON; :func:`decode` detects which (a JSON payload starts with ``{``, a msgpack map never
does). docs/messages.md is the human-readable reference; keep it in sync with this module.

Versioning: :data:`SCHEMA_VERSION` changes only when a field is removed, renamed or changes
meaning. New optional fields may be added without a version change, so decoders ignore fields
they do not know and reject only versions newer than they understand.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union, get_args

import msgpack

from realtime_fer.publish.errors import MessageError

SCHEMA_VERSION = 2
"""Version of the message schema produced by this code. History (docs/messages.md):

1. the first published format: an attribution's ``top`` lists single landmarks
   ``{"landmark", "region", "weight"}`` (and blendshapes);
2. ``top`` lists named face regions ``{"region", "weight"}`` and blendshapes
   ``{"blendshape", "weight"}``; single landmarks only on request, under ``landmarks``.

The decoder reads every version from 1 to this one; :attr:`Prediction.schema` says which."""

TOPIC_ROOT = "fer"

Encoding = Literal["msgpack", "json"]
ENCODINGS: tuple[str, ...] = get_args(Encoding)

StatusEvent = Literal["started", "face_found", "face_lost", "no_face", "source_lost", "reconnecting", "recovered", "heartbeat", "ended"]
STATUS_EVENTS: tuple[str, ...] = get_args(StatusEvent)

_STREAM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Latest accepted time stamp, Unix seconds (the end of the year 9999): later ones, like
#: negative ones, are malformed (and would break ``time.localtime`` in a subscriber).
MAX_UNIX_TIME = 253402300799.0
#: Longest accepted text field (characters); a real ``detail`` is a few hundred.
MAX_TEXT_CHARS = 1 << 16
#: Deepest accepted nesting of free-form fields (``attributions``).
MAX_DEPTH = 16


# --------------------------------------------------------------------------------------------
# topics
# --------------------------------------------------------------------------------------------
def check_stream_id(stream: str) -> str:
    """Return ``stream`` if it is a valid stream id (letters, digits, ``_`` and ``-``; no dots,
    which separate topic levels), else raise :class:`MessageError`."""
    if not isinstance(stream, str) or not _STREAM_ID.match(stream):
        raise MessageError(f"invalid stream id {stream!r}: use 1-64 letters, digits, '_' or '-' (no dots or spaces)")
    return stream


def stream_prefix(stream: str) -> str:
    """Topic prefix of everything a stream publishes: ``fer.<stream>.``."""
    return f"{TOPIC_ROOT}.{check_stream_id(stream)}."


def face_topic(stream: str, face: int) -> str:
    """Topic of the predictions for one face: ``fer.<stream>.face.<id>.``."""
    return f"{stream_prefix(stream)}face.{int(face)}."


def faces_prefix(stream: str) -> str:
    """Topic prefix of the predictions for every face of a stream: ``fer.<stream>.face.``."""
    return f"{stream_prefix(stream)}face."


def status_topic(stream: str) -> str:
    """Topic of status messages: ``fer.<stream>.status.``."""
    return f"{stream_prefix(stream)}status."


def frame_topic(stream: str) -> str:
    """Topic of frame images: ``fer.<stream>.frame.``."""
    return f"{stream_prefix(stream)}frame."


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """The emotion estimate for one face in one frame.

    Times are Unix seconds (``time.time()``; wall clock, so a subscriber on the same host can
    compute latency as ``t_publish - t_capture``).
    """

    TYPE: ClassVar[str] = "prediction"

    stream: str
    """Stream id of the publishing recognizer (``--stream-id``)."""
    frame: int
    """Index of the frame in capture order (0-based)."""
    face: int
    """Track id of the face; stable while the face stays in view."""
    bbox: list[float]
    """``[x0, y0, x1, y1]`` in pixels of the captured frame (top-left origin)."""
    probabilities: dict[str, float]
    """Emotion -> probability in [0, 1], one entry per emotion the model bundle scores. Each
    emotion has its own classifier, so the values need not sum to 1."""
    top: str
    """The winning emotion, or ``"neutral"`` when no emotion passes its threshold."""
    t_capture: float
    """When the frame was captured, Unix seconds."""
    t_publish: float | None = None
    """When the message was sent, Unix seconds; filled by :func:`encode` when ``None``."""
    attributions: dict[str, Any] = field(default_factory=dict)
    """Per-emotion explanations (see docs/messages.md): since schema 2 each ``top`` lists face
    regions and blendshapes (schema 1: single landmarks); empty when not computed."""
    landmarks: list[list[float]] | None = None
    """Optional ``[[x, y, z], ...]`` face landmarks, x and y in pixels, z in the same scale."""
    image_size: list[int] | None = None
    """Optional ``[width, height]`` of the captured frame in pixels."""
    smoothed: dict[str, float] | None = None
    """Emotion -> the face's probability smoothed over time (see
    :mod:`realtime_fer.models.smoothing`): what ``top`` is decided on. ``None`` in messages of
    producers without smoothing, where ``top`` is decided on ``probabilities``."""
    blendshapes: dict[str, float] | None = None
    """MediaPipe's 52 blendshape scores of the face in this frame (``browInnerUp``, ``jawOpen``,
    ...), when the landmarker computes them (``landmarker.blendshapes: true``)."""
    adapted: bool | None = None
    """Whether person-adaptive normalisation corrected this face's features (its resting face is
    known); ``None`` when adaptation is off."""
    partial: bool | None = None
    """``True`` when the face had been seen for less than a full window (at least
    ``window.min_seconds``): the window's samples before the face's first frame hold that frame.
    ``False`` for a full window; ``None`` from producers that do not say (older ones, which
    published full windows only)."""
    action_units: dict[str, float] | None = None
    """Approximate FACS action-unit intensities in [0, 1] (``"AU12"`` -> ...), derived from
    ``blendshapes`` (:mod:`realtime_fer.describe.action_units`); ``None`` without blendshapes."""
    valence: float | None = None
    """Valence in [-1, 1], derived from the emotion probabilities (``smoothed`` when present) with
    the circumplex points of :mod:`realtime_fer.describe.affect`; ``None`` from producers that do
    not compute it."""
    arousal: float | None = None
    """Arousal in [-1, 1], derived like ``valence``."""
    schema: int = SCHEMA_VERSION

    @property
    def topic(self) -> str:
        return face_topic(self.stream, self.face)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str/int/float/list/dict/None) ready for msgpack or JSON."""
        return {
            "type": self.TYPE,
            "schema": int(self.schema),
            "stream": self.stream,
            "frame": int(self.frame),
            "face": int(self.face),
            "t_capture": float(self.t_capture),
            "t_publish": None if self.t_publish is None else float(self.t_publish),
            "bbox": [float(v) for v in self.bbox],
            "probabilities": {str(k): float(v) for k, v in self.probabilities.items()},
            "top": str(self.top),
            "attributions": _plain(self.attributions),
            "landmarks": None if self.landmarks is None else _plain(self.landmarks),
            "image_size": None if self.image_size is None else [int(v) for v in self.image_size],
            "smoothed": None if self.smoothed is None else {str(k): float(v) for k, v in self.smoothed.items()},
            "adapted": None if self.adapted is None else bool(self.adapted),
            "partial": None if self.partial is None else bool(self.partial),
            "blendshapes": None if self.blendshapes is None else {str(k): float(v) for k, v in self.blendshapes.items()},
            "action_units": None if self.action_units is None else {str(k): float(v) for k, v in self.action_units.items()},
            "valence": None if self.valence is None else float(self.valence),
            "arousal": None if self.arousal is None else float(self.arousal),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Prediction:
        """Validate and build from a decoded payload; raises :class:`MessageError`."""
        v = _Validator(data, cls.TYPE)
        return cls(
            schema=v.version,
            stream=v.stream(),
            frame=v.integer("frame", minimum=0),
            face=v.integer("face"),
            t_capture=v.time("t_capture"),
            t_publish=v.time("t_publish", optional=True),
            bbox=v.numbers("bbox", length=4),
            probabilities=v.probabilities("probabilities"),
            top=v.text("top"),
            attributions=v.plain_mapping("attributions", optional=True) or {},
            landmarks=v.points("landmarks"),
            image_size=v.ints("image_size", length=2, optional=True),
            smoothed=v.probabilities("smoothed", optional=True),
            adapted=v.boolean("adapted", optional=True),
            blendshapes=v.probabilities("blendshapes", optional=True, what="blendshape -> score"),
            partial=v.boolean("partial", optional=True),
            action_units=v.probabilities("action_units", optional=True, what="action unit -> intensity"),
            valence=v.number("valence", optional=True, bounds=(-1.0, 1.0)),
            arousal=v.number("arousal", optional=True, bounds=(-1.0, 1.0)),
        )


@dataclass
class Status:
    """A pipeline event with current counters."""

    TYPE: ClassVar[str] = "status"

    stream: str
    event: StatusEvent
    """One of :data:`STATUS_EVENTS`."""
    timestamp: float
    """When the event happened, Unix seconds."""
    fps: float = 0.0
    """Frames processed per second, recent average."""
    frames: int = 0
    """Frames processed since start."""
    dropped: int = 0
    """Frames dropped since start (live source faster than the pipeline)."""
    detail: str = ""
    """Human-readable detail (why the source was lost, the next reconnect delay, ...)."""
    face: int | None = None
    """For ``face_found`` / ``face_lost``: the track id concerned."""
    faces: int | None = None
    """Faces tracked when the status was sent (after the frames processed so far); ``None``
    from producers that do not say (older ones)."""
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.event not in STATUS_EVENTS:
            raise MessageError(f"unknown status event {self.event!r}; expected one of {', '.join(STATUS_EVENTS)}")

    @property
    def topic(self) -> str:
        return status_topic(self.stream)

    def to_dict(self) -> dict[str, Any]:
        """Plain data ready for msgpack or JSON."""
        return {
            "type": self.TYPE,
            "schema": int(self.schema),
            "stream": self.stream,
            "event": self.event,
            "timestamp": float(self.timestamp),
            "fps": float(self.fps),
            "frames": int(self.frames),
            "dropped": int(self.dropped),
            "detail": str(self.detail),
            "face": None if self.face is None else int(self.face),
            "faces": None if self.faces is None else int(self.faces),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Status:
        """Validate and build from a decoded payload; raises :class:`MessageError`."""
        v = _Validator(data, cls.TYPE)
        event = v.text("event")
        if event not in STATUS_EVENTS:
            raise MessageError(f"invalid status message: unknown event {event!r}; expected one of {', '.join(STATUS_EVENTS)}")
        return cls(
            schema=v.version,
            stream=v.stream(),
            event=event,  # type: ignore[arg-type]
            timestamp=v.time("timestamp"),
            fps=v.number("fps", optional=True) or 0.0,
            frames=v.integer("frames", minimum=0, optional=True) or 0,
            dropped=v.integer("dropped", minimum=0, optional=True) or 0,
            detail=v.text("detail", optional=True) or "",
            face=v.integer("face", optional=True),
            faces=v.integer("faces", minimum=0, optional=True),
        )


#: Largest accepted JPEG in a :class:`FrameImage` (bytes); a 640-pixel frame is 20-60 kB.
MAX_JPEG_BYTES = 8 << 20


@dataclass
class FrameImage:
    """A processed frame as a small JPEG, published after that frame's predictions when asked
    (``frames.enabled`` in the runtime config, ``run --publish-frames``), so that a display on
    another machine (``realtime-fer serve --connect``) can draw each frame with the predictions
    of the same ``frame`` index."""

    TYPE: ClassVar[str] = "frame"

    stream: str
    frame: int
    """Index of the frame in capture order, as in the predictions made on it."""
    t_capture: float
    """When the frame was captured, Unix seconds."""
    image_size: list[int]
    """``[width, height]`` of the captured frame in pixels: the space of the predictions'
    ``bbox`` and ``landmarks`` (the JPEG itself may be smaller)."""
    jpeg: bytes
    """The JPEG-encoded image (BGR frame scaled to at most ``frames.max_width`` pixels wide)."""
    t_publish: float | None = None
    """When the message was sent, Unix seconds; filled by :func:`encode` when ``None``."""
    schema: int = SCHEMA_VERSION

    @property
    def topic(self) -> str:
        return frame_topic(self.stream)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``jpeg`` stays bytes (msgpack ``bin``; :func:`encode` turns it into base64
        text for JSON)."""
        return {
            "type": self.TYPE,
            "schema": int(self.schema),
            "stream": self.stream,
            "frame": int(self.frame),
            "t_capture": float(self.t_capture),
            "t_publish": None if self.t_publish is None else float(self.t_publish),
            "image_size": [int(v) for v in self.image_size],
            "jpeg": bytes(self.jpeg),
        }

    @classmethod
    def from_dict(cls, data: Any) -> FrameImage:
        """Validate and build from a decoded payload (``jpeg`` as bytes, or base64 text from
        JSON); raises :class:`MessageError`."""
        v = _Validator(data, cls.TYPE)
        size = v.ints("image_size", length=2)
        if size is None or min(size) < 1:
            raise v.fail("image_size", "[width, height], positive integers")
        return cls(
            schema=v.version,
            stream=v.stream(),
            frame=v.integer("frame", minimum=0),
            t_capture=v.time("t_capture"),
            t_publish=v.time("t_publish", optional=True),
            image_size=size,
            jpeg=v.jpeg("jpeg"),
        )


Message = Union[Prediction, Status, FrameImage]
_TYPES: dict[str, type[Prediction] | type[Status] | type[FrameImage]] = {
    Prediction.TYPE: Prediction,
    Status.TYPE: Status,
    FrameImage.TYPE: FrameImage,
}


def message_from_dict(data: Any) -> Message:
    """Build the typed message a decoded payload describes (dispatch on ``type``)."""
    if not isinstance(data, dict):
        raise MessageError(f"invalid message: expected a map, got {type(data).__name__}")
    kind = data.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        found = "missing" if kind is None else f"{kind!r}"
        raise MessageError(f"invalid message: 'type' is {found}; expected 'prediction', 'status' or 'frame'")
    return cls.from_dict(data)


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def check_encoding(encoding: str) -> Encoding:
    """Return ``encoding`` if supported, else raise :class:`MessageError`."""
    if encoding not in ENCODINGS:
        raise MessageError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    return encoding  # type: ignore[return-value]


def encode(message: Message, encoding: Encoding = "msgpack") -> bytes:
    """Serialise ``message``; a :class:`Prediction` without ``t_publish`` is stamped now."""
    data = message.to_dict()
    if data.get("type") in (Prediction.TYPE, FrameImage.TYPE) and data.get("t_publish") is None:
        data["t_publish"] = time.time()
    if encoding == "msgpack":
        return msgpack.packb(data, use_bin_type=True)
    if encoding == "json":
        if isinstance(data.get("jpeg"), bytes):
            data["jpeg"] = base64.b64encode(data["jpeg"]).decode("ascii")
        try:
            return json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except ValueError as exc:
            raise MessageError(f"cannot encode message as JSON: {exc}") from None
    check_encoding(encoding)
    raise AssertionError("unreachable")


def detect_encoding(payload: bytes) -> Encoding:
    """``json`` when the payload starts with ``{`` (after whitespace), else ``msgpack``.

    A msgpack map starts with byte 0x80-0x8f, 0xde or 0xdf, never with ``{`` (0x7b).
    """
    stripped = payload.lstrip(b" \t\r\n")
    return "json" if stripped[:1] == b"{" else "msgpack"


def decode(payload: bytes, encoding: Encoding | None = None) -> Message:
    """Parse and validate a payload into a :class:`Prediction`, :class:`Status` or :class:`FrameImage`.

    Args:
        payload: the second frame of a ``[topic, payload]`` message.
        encoding: ``msgpack`` or ``json``; detected from the payload when ``None``.

    Raises:
        MessageError: the payload is not valid msgpack/JSON or not a valid message.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise MessageError(f"invalid message: payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    enc = check_encoding(encoding) if encoding is not None else detect_encoding(payload)
    try:
        if enc == "json":
            data = json.loads(payload.decode("utf-8"))
        else:
            data = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise MessageError(f"invalid message: payload is not valid {enc} ({type(exc).__name__}: {exc})") from None
    return message_from_dict(data)


def check_topic(topic: str, message: Message) -> None:
    """Raise :class:`MessageError` unless ``topic`` is the topic ``message`` is published on
    (a prediction of face 2 under ``fer.cam0.face.1.`` would reach the wrong subscribers)."""
    if topic != message.topic:
        raise MessageError(f"invalid message: a {message.TYPE} of {message.topic!r} arrived on topic {topic[:80]!r}")


def to_json_line(message: Message) -> str:
    """One-line JSON form of a message (as published with ``encoding="json"``), for JSONL files."""
    return encode(message, "json").decode("utf-8")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Convert numpy arrays/scalars and tuples to plain lists and numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy array or scalar
    if tolist is not None and not isinstance(value, (str, bytes)):
        return tolist()
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON-safe plain data: finite numbers, bounded strings, booleans,
    null, and lists and string-keyed maps of those, at most :data:`MAX_DEPTH` deep."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TEXT_CHARS
    if isinstance(value, (int, float)):
        return _is_number(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, list):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


class _Validator:
    """Typed field access over a decoded map, raising :class:`MessageError` with the field name."""

    def __init__(self, data: Any, kind: str) -> None:
        if not isinstance(data, dict):
            raise MessageError(f"invalid {kind} message: expected a map, got {type(data).__name__}")
        found = data.get("type", kind)
        if found != kind:
            raise MessageError(f"invalid {kind} message: 'type' is {found!r}")
        self.data = data
        self.kind = kind
        self.version = self._schema()

    def fail(self, name: str, expected: str) -> MessageError:
        try:
            shown = repr(self.data[name])
        except (RecursionError, ValueError):  # too deep; an int too long to print
            shown = f"<{type(self.data[name]).__name__}>"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return MessageError(f"invalid {self.kind} message: field {name!r} must be {expected}, got {shown}")

    def _get(self, name: str, optional: bool) -> tuple[bool, Any]:
        value = self.data.get(name)
        if value is None:
            if optional:
                return False, None
            state = "is null" if name in self.data else "is missing"
            raise MessageError(f"invalid {self.kind} message: required field {name!r} {state}")
        return True, value

    def _schema(self) -> int:
        _, value = self._get("schema", False)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail("schema", "a positive integer")
        if value > SCHEMA_VERSION:
            raise MessageError(
                f"{self.kind} message has schema version {value}, newer than this decoder supports "
                f"({SCHEMA_VERSION}); upgrade realtime-fer"
            )
        return value

    def text(self, name: str, optional: bool = False) -> Any:
        present, value = self._get(name, optional)
        if present and (not isinstance(value, str) or len(value) > MAX_TEXT_CHARS):
            raise self.fail(name, f"a string of at most {MAX_TEXT_CHARS} characters")
        return value

    def stream(self) -> str:
        value = self.text("stream")
        if not _STREAM_ID.match(value):
            raise self.fail("stream", "a stream id (1-64 letters, digits, '_' or '-')")
        return value

    def time(self, name: str, optional: bool = False) -> Any:
        value = self.number(name, optional)
        if value is not None and not 0.0 <= value <= MAX_UNIX_TIME:
            raise self.fail(name, "a Unix time in seconds (0 to the year 9999)")
        return value

    def boolean(self, name: str, optional: bool = False) -> bool | None:
        present, value = self._get(name, optional)
        if not present:
            return None
        if not isinstance(value, bool):
            raise self.fail(name, "true or false")
        return value

    def integer(self, name: str, minimum: int | None = None, optional: bool = False) -> Any:
        present, value = self._get(name, optional)
        if present and (isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum)):
            raise self.fail(name, "an integer" + (f" >= {minimum}" if minimum is not None else ""))
        return value

    def number(self, name: str, optional: bool = False, bounds: tuple[float, float] | None = None) -> Any:
        present, value = self._get(name, optional)
        if present and not _is_number(value):
            raise self.fail(name, "a finite number")
        if present and bounds is not None and not bounds[0] - 1e-6 <= value <= bounds[1] + 1e-6:
            raise self.fail(name, f"a number in [{bounds[0]:g}, {bounds[1]:g}]")
        return float(value) if present else None

    def numbers(self, name: str, length: int) -> list[float]:
        _, value = self._get(name, False)
        if not isinstance(value, list) or len(value) != length or not all(_is_number(x) for x in value):
            raise self.fail(name, f"a list of {length} numbers")
        return [float(x) for x in value]

    def ints(self, name: str, length: int, optional: bool = False) -> list[int] | None:
        present, value = self._get(name, optional)
        if not present:
            return None
        if not isinstance(value, list) or len(value) != length or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise self.fail(name, f"a list of {length} integers")
        return list(value)

    def mapping(self, name: str, optional: bool = False) -> dict[str, Any] | None:
        present, value = self._get(name, optional)
        if present and (not isinstance(value, dict) or not all(isinstance(k, str) for k in value)):
            raise self.fail(name, "a map with string keys")
        return value

    def plain_mapping(self, name: str, optional: bool = False) -> dict[str, Any] | None:
        value = self.mapping(name, optional)
        if value is not None and not _is_plain(value):
            raise self.fail(name, f"plain data (finite numbers, strings, lists, maps; at most {MAX_DEPTH} deep)")
        return value

    def probabilities(self, name: str, optional: bool = False, what: str = "emotion -> probability") -> dict[str, float] | None:
        present, value = self._get(name, optional)
        if optional and (not present or value is None):
            return None
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and _is_number(p) and -1e-6 <= p <= 1 + 1e-6 for k, p in value.items()
        )
        if not ok:
            raise self.fail(name, f"a map {what} in [0, 1]")
        return {k: float(p) for k, p in value.items()}

    def jpeg(self, name: str) -> bytes:
        """A JPEG image: bytes (msgpack) or base64 text (JSON), starting with the JPEG marker."""
        _, value = self._get(name, False)
        if isinstance(value, str) and len(value) <= MAX_JPEG_BYTES * 4 // 3 + 4:
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(name, "JPEG bytes or their base64 text") from None
        if not isinstance(value, (bytes, bytearray)) or len(value) > MAX_JPEG_BYTES or bytes(value[:2]) != b"\xff\xd8":
            raise self.fail(name, f"JPEG bytes (starting FF D8, at most {MAX_JPEG_BYTES} bytes) or their base64 text")
        return bytes(value)

    def points(self, name: str) -> list[list[float]] | None:
        present, value = self._get(name, True)
        if not present:
            return None
        ok = isinstance(value, list) and all(
            isinstance(p, list) and len(p) in (2, 3) and all(_is_number(c) for c in p) for p in value
        )
        if not ok:
            raise self.fail(name, "a list of [x, y, z] points or null")
        return value
