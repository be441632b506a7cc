"""The ZeroMQ PUB side: sends :class:`~realtime_fer.publish.schema.Prediction` and
:class:`~realtime_fer.publish.schema.Status` messages as ``[topic, payload]``.

A publisher must never slow the pipeline down. The socket has a send high-water mark (SNDHWM),
every send is non-blocking, and LINGER is short so closing never waits for absent readers.

Two drop policies, because ZeroMQ cannot both isolate subscribers and count drops:

* ``count_drops=False`` (default): ZeroMQ's own PUB behaviour. Each subscriber has its own
  queue; one that falls behind (or never reads) loses messages on that queue only, and the other
  subscribers still get everything. The publisher cannot see those drops, so :attr:`dropped`
  stays 0.
* ``count_drops=True``: sets ``ZMQ_XPUB_NODROP``. A send that would overflow any matching
  subscriber's queue fails at once, and the message is dropped for every subscriber and counted
  in :attr:`dropped`. Use it to measure; with several subscribers, a stuck one then starves the
  others.

A ZeroMQ socket belongs to one thread; call :meth:`Publisher.publish` from one thread only.

Security (:mod:`.security`): with ``curve_secret_key`` the socket is a CURVE server (messages
encrypted; subscribers need the server's public key) and with ``curve_allowed_clients`` only the
listed client keys may subscribe. Such a publisher runs in a ZeroMQ context of its own (one ZAP
handler per context). Binding a non-loopback address without CURVE logs a warning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from realtime_fer.publish.errors import PublishError
from realtime_fer.publish.schema import Encoding, Message, Status, StatusEvent, check_encoding, check_stream_id, encode

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


@dataclass
class PublisherOptions:
    """Publishing configuration (YAML section ``publish``)."""

    endpoint: str = DEFAULT_ENDPOINT
    """Where the PUB socket binds. Loopback by default; ``tcp://*:5556`` exposes it on every
    interface. A port of ``*`` or ``0`` lets the OS choose (see :attr:`Publisher.endpoint`)."""
    stream_id: str = "cam0"
    """Second topic level, ``fer.<stream_id>.``; letters, digits, ``_`` and ``-``."""
    encoding: Encoding = "msgpack"
    sndhwm: int = 100
    """Messages queued per subscriber before dropping."""
    linger_ms: int = 100
    """How long :meth:`Publisher.close` may wait to flush queued messages."""
    count_drops: bool = False
    """See the module docs: ``True`` counts drops but lets one stuck subscriber starve others."""
    curve_secret_key: str | None = None
    """The server's secret certificate (``NAME.key_secret`` from ``realtime-fer keys NAME``):
    encrypt with CURVE; subscribers then need the matching ``NAME.key``. ``None``: no
    encryption (a warning is logged when the endpoint is not loopback/ipc/inproc)."""
    curve_allowed_clients: str | None = None
    """A folder of client public certificates (every ``*.key`` in it) or one ``.key`` file: only
    these clients may subscribe (ZAP allow-list). ``None``: any client that has the server's
    public key. Needs ``curve_secret_key``; read once when the publisher starts."""

    def __post_init__(self) -> None:
        check_stream_id(self.stream_id)
        check_encoding(self.encoding)
        if self.sndhwm < 1:
            raise ValueError("sndhwm must be >= 1")
        if self.linger_ms < 0:
            raise ValueError("linger_ms must be >= 0")
        if self.curve_allowed_clients is not None and self.curve_secret_key is None:
            raise ValueError("curve_allowed_clients needs curve_secret_key (the server's CURVE secret key file)")


class Publisher:
    """A bound ZeroMQ PUB socket that publishes typed messages.

    Args:
        endpoint, stream_id, encoding, sndhwm, linger_ms, count_drops, curve_secret_key,
            curve_allowed_clients: see :class:`PublisherOptions`.
        context: a ``zmq.Context`` to use; default: the process-wide instance, or with CURVE a
            context of the publisher's own (closed with it). A given context with an allow-list
            must not run another ZAP handler.

    Raises:
        PublishError: the endpoint is malformed or already in use; a key file is missing or
            malformed; libzmq has no CURVE.

    Counters: :attr:`sent` (messages handed to ZeroMQ), :attr:`dropped` (refused at the
    high-water mark, only with ``count_drops=True``).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        stream_id: str = "cam0",
        encoding: Encoding = "msgpack",
        sndhwm: int = 100,
        linger_ms: int = 100,
        count_drops: bool = False,
        context: Any = None,
        *,
        curve_secret_key: str | None = None,
        curve_allowed_clients: str | None = None,
    ) -> None:
        import zmq

        from realtime_fer.publish.security import CurveServer, warn_if_exposed

        self.options = PublisherOptions(
            endpoint, stream_id, encoding, sndhwm, linger_ms, count_drops, curve_secret_key, curve_allowed_clients
        )
        self.stream_id = stream_id
        self.encoding: Encoding = encoding
        self.sent = 0
        self.dropped = 0
        self._zmq = zmq
        self._own_ctx = context is None and curve_secret_key is not None
        self._ctx = zmq.Context() if self._own_ctx else (context or zmq.Context.instance())
        self._curve: CurveServer | None = None
        if curve_secret_key is not None:
            try:
                self._curve = CurveServer(curve_secret_key, curve_allowed_clients, self._ctx)
            except BaseException:
                self._term_own_context()
                raise
        self._socket = self._ctx.socket(zmq.PUB)
        if self._curve is not None:
            self._curve.secure(self._socket)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        if count_drops:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        bind_to = _os_chosen_port(endpoint)
        try:
            self._socket.bind(bind_to)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            self._stop_curve()
            raise PublishError(f"cannot bind publisher to {endpoint}: {exc}") from None
        self.endpoint: str = self._socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        """The bound endpoint, with the port the OS chose (connect subscribers here)."""
        self._closed = False
        security = self._curve.describe() if self._curve is not None else "no encryption"
        log.info("publishing %s on %s (stream %s, sndhwm %d, %s)", encoding, self.endpoint, stream_id, sndhwm, security)
        warn_if_exposed(endpoint, secured=self._curve is not None, logger=log)

    @classmethod
    def from_options(cls, options: PublisherOptions, context: Any = None) -> Publisher:
        return cls(
            options.endpoint,
            options.stream_id,
            options.encoding,
            options.sndhwm,
            options.linger_ms,
            options.count_drops,
            context,
            curve_secret_key=options.curve_secret_key,
            curve_allowed_clients=options.curve_allowed_clients,
        )

    def publish(self, message: Message) -> bool:
        """Send one message without blocking.

        Returns:
            False when it was refused at the high-water mark (counted in :attr:`dropped`).
        """
        return self.send_raw(message.topic, encode(message, self.encoding))

    def send_raw(self, topic: str, payload: bytes) -> bool:
        """Send an already encoded ``[topic, payload]`` without blocking."""
        if self._closed:
            raise PublishError("publisher is closed")
        try:
            self._socket.send_multipart([topic.encode("utf-8"), payload], flags=self._zmq.NOBLOCK)
        except self._zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def status(
        self,
        event: StatusEvent,
        *,
        fps: float = 0.0,
        frames: int = 0,
        dropped: int = 0,
        detail: str = "",
        face: int | None = None,
        timestamp: float | None = None,
    ) -> bool:
        """Build and publish a :class:`Status` for this stream (timestamp: now by default)."""
        message = Status(
            stream=self.stream_id,
            event=event,
            timestamp=time.time() if timestamp is None else timestamp,
            fps=fps,
            frames=frames,
            dropped=dropped,
            detail=detail,
            face=face,
        )
        return self.publish(message)

    def close(self) -> None:
        """Close the socket (waits at most ``linger_ms``). Idempotent."""
        if not self._closed:
            self._closed = True
            self._socket.close(linger=self.options.linger_ms)
            self._stop_curve()
            log.info("publisher closed: %d sent, %d dropped", self.sent, self.dropped)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def secured(self) -> bool:
        """Whether the socket is a CURVE server."""
        return self._curve is not None

    def _stop_curve(self) -> None:
        if self._curve is not None:
            self._curve.stop()
        self._term_own_context()

    def _term_own_context(self) -> None:
        if self._own_ctx:
            self._own_ctx = False
            self._ctx.term()  # the socket is closed: waits at most its linger

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _os_chosen_port(endpoint: str) -> str:
    """``tcp://host:0`` -> ``tcp://host:*`` (ZeroMQ's spelling of "any free port")."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-1] + "*"
    return endpoint
