"""The ZeroMQ SUB side: connect to a recognizer and receive typed, validated messages.

Example::

    with Subscriber("tcp://127.0.0.1:5556", topics=["fer.cam0.face."], timeout=1.0) as sub:
        for msg in sub:                  # ends after `timeout` seconds without a message
            if isinstance(msg, Prediction):
                print(msg.face, msg.top, msg.probabilities.get(msg.top))

ZeroMQ connects in the background: a subscriber created before the publisher binds, or while
it restarts, reconnects by itself. Messages published before the subscription reached the
publisher are not delivered ("slow joiner").

A publisher secured with CURVE (:mod:`.security`) is reached with ``curve_server_key`` (its
public ``.key`` file) and, when it has an allow-list, ``curve_secret_key`` (this client's
``.key_secret``). With a wrong key, or none, the handshake fails quietly and nothing arrives:
:meth:`Subscriber.recv` returns ``None`` after its timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator, Sequence

from realtime_fer.publish.errors import MessageError, PublishError
from realtime_fer.publish.publisher import DEFAULT_ENDPOINT
from realtime_fer.publish.schema import TOPIC_ROOT, Encoding, Message, check_encoding, check_topic, decode

log = logging.getLogger(__name__)

_UNSET: Any = object()


class Subscriber:
    """A connected ZeroMQ SUB socket yielding :class:`Prediction` / :class:`Status` messages.

    Args:
        connect: endpoint of the publisher, e.g. ``tcp://127.0.0.1:5556`` or ``ipc:///tmp/fer``;
            or a list of endpoints (several hosts): one socket connects to all of them and
            yields their messages as they arrive (ZeroMQ queues each fairly). With CURVE, every
            endpoint must be a publisher with that ``curve_server_key``.
        topics: topic prefixes to subscribe to (``fer.`` for everything; ``fer.cam0.face.1.``
            for one face of one stream). A prefix matches every topic that starts with it.
        timeout: default for :meth:`recv`, seconds; ``None`` waits forever. Iteration ends after
            ``timeout`` seconds without a message.
        encoding: force ``msgpack`` or ``json``; detected per message when ``None``.
        rcvhwm: messages buffered before ZeroMQ drops newer ones for this subscriber.
        context: a ``zmq.Context``; default: the process-wide instance.
        curve_server_key: the CURVE publisher's public certificate (``NAME.key``); ``None``
            connects without CURVE.
        curve_secret_key: this client's secret certificate (``NAME.key_secret``), which a
            publisher with an allow-list must know; ``None`` uses a one-off key pair. Needs
            ``curve_server_key``.

    Raises:
        PublishError: the endpoint is malformed; a key file is missing or malformed; libzmq has
            no CURVE.
    """

    def __init__(
        self,
        connect: str | Sequence[str] = DEFAULT_ENDPOINT,
        topics: Iterable[str] = (TOPIC_ROOT + ".",),
        timeout: float | None = None,
        encoding: Encoding | None = None,
        rcvhwm: int = 1000,
        context: Any = None,
        *,
        curve_server_key: str | None = None,
        curve_secret_key: str | None = None,
    ) -> None:
        import zmq

        from realtime_fer.publish.security import secure_client

        if curve_secret_key is not None and curve_server_key is None:
            raise PublishError("a client CURVE key needs the server's public key too (curve_server_key / --curve-server-key)")

        self._zmq = zmq
        self.endpoints: list[str] = [connect] if isinstance(connect, str) else list(connect)
        """Every endpoint this subscriber connects to."""
        if not self.endpoints:
            raise PublishError("no endpoint to connect to")
        self.endpoint = ", ".join(self.endpoints)
        self.topics = list(topics)
        self.timeout = timeout
        self.encoding = check_encoding(encoding) if encoding is not None else None
        self.received = 0
        self.rejected = 0
        """Messages that arrived malformed (wrong frame count, payload or topic) and were refused."""
        self._ctx = context or zmq.Context.instance()
        self._socket = self._ctx.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.secured = curve_server_key is not None
        """Whether this subscriber speaks CURVE."""
        if curve_server_key is not None:
            try:
                secure_client(self._socket, curve_server_key, curve_secret_key)
            except BaseException:
                self._socket.close(linger=0)
                raise
        for topic in self.topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
        for endpoint in self.endpoints:
            try:
                self._socket.connect(endpoint)
            except zmq.ZMQError as exc:
                self._socket.close(linger=0)
                raise PublishError(
                    f"cannot connect to {endpoint!r}: {exc}; expected an endpoint such as tcp://127.0.0.1:5556 or ipc:///tmp/fer"
                ) from None
        self._closed = False
        log.info("subscribed to %s on %s%s", ", ".join(map(repr, self.topics)) or "nothing", self.endpoint, " (CURVE)" if self.secured else "")

    def recv_raw(self, timeout: float | None = _UNSET) -> tuple[str, bytes] | None:
        """The next ``(topic, payload)`` undecoded, or ``None`` after ``timeout`` seconds.

        Raises:
            MessageError: the message does not have exactly two frames.
        """
        if self._closed:
            raise PublishError("subscriber is closed")
        wait = self.timeout if timeout is _UNSET else timeout
        if wait is not None and not self._socket.poll(int(max(0.0, wait) * 1000)):
            return None
        parts = self._socket.recv_multipart()
        if len(parts) != 2:
            self.rejected += 1
            raise MessageError(f"invalid message: expected 2 frames [topic, payload], got {len(parts)}")
        self.received += 1
        return parts[0].decode("utf-8", errors="replace"), parts[1]

    def recv(self, timeout: float | None = _UNSET) -> Message | None:
        """The next decoded message, or ``None`` when none arrives within ``timeout`` seconds
        (default: the constructor's ``timeout``; ``None``: wait forever).

        Raises:
            MessageError: a malformed message arrived (the next call continues with the next one).
        """
        raw = self.recv_raw(timeout)
        if raw is None:
            return None
        topic, payload = raw
        try:
            message = decode(payload, self.encoding)
            check_topic(topic, message)
            return message
        except MessageError as exc:
            self.rejected += 1
            raise MessageError(f"{exc} (topic {topic[:80]!r})") from None

    def __iter__(self) -> Iterator[Message]:
        """Messages until ``timeout`` passes without one (forever when ``timeout`` is None).
        Malformed messages are logged and skipped."""
        while not self._closed:
            try:
                msg = self.recv()
            except MessageError as exc:
                log.warning("skipping malformed message: %s", exc)
                continue
            if msg is None:
                return
            yield msg

    def wait_for(self, predicate: Any, timeout: float) -> Message | None:
        """The first message for which ``predicate(msg)`` is true within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and predicate(msg):
                return msg
        return None

    def close(self) -> None:
        """Close the socket immediately. Idempotent."""
        if not self._closed:
            self._closed = True
            self._socket.close(linger=0)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
