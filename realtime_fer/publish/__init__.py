"""Publishing stage: versioned messages over ZeroMQ PUB/SUB (see docs/messages.md).

* :mod:`.schema`: topics, :class:`Prediction`, :class:`Status`, :class:`FrameImage`, msgpack/JSON :func:`encode` /
  :func:`decode` with validation.
* :class:`Publisher` (:mod:`.publisher`): a bound PUB socket that never blocks the pipeline.
* :class:`Subscriber` (:mod:`.subscriber`): a SUB client yielding typed messages.
"""

from realtime_fer.publish.errors import MessageError, PublishError
from realtime_fer.publish.publisher import DEFAULT_ENDPOINT, Publisher, PublisherOptions
from realtime_fer.publish.schema import (
    ENCODINGS,
    SCHEMA_VERSION,
    STATUS_EVENTS,
    Encoding,
    FrameImage,
    Message,
    Prediction,
    Status,
    StatusEvent,
    decode,
    detect_encoding,
    encode,
    face_topic,
    faces_prefix,
    frame_topic,
    message_from_dict,
    status_topic,
    stream_prefix,
    to_json_line,
)
from realtime_fer.publish.subscriber import Subscriber

__all__ = [
    "DEFAULT_ENDPOINT",
    "ENCODINGS",
    "SCHEMA_VERSION",
    "STATUS_EVENTS",
    "Encoding",
    "FrameImage",
    "Message",
    "MessageError",
    "Prediction",
    "PublishError",
    "Publisher",
    "PublisherOptions",
    "Status",
    "StatusEvent",
    "Subscriber",
    "decode",
    "detect_encoding",
    "encode",
    "face_topic",
    "faces_prefix",
    "frame_topic",
    "message_from_dict",
    "status_topic",
    "stream_prefix",
    "to_json_line",
]
