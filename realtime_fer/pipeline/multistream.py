"""Several sources in one process: one :class:`Recognizer` per stream, one ZeroMQ PUB socket.

``realtime-fer run --source a=cam.mp4 --source b=rtsp://...`` (or a runtime config with a
``streams:`` list) serves every stream from one process:

* each stream has its own capture thread, landmarker, tracker, ring buffers, worker thread and
  status messages; its recognizer loop runs in a thread of its own (``fer-<id>``), pinned by
  the plan of :func:`~realtime_fer.affinity.plan_streams`;
* all streams publish on **one** endpoint, topics ``fer.<id>.face.<n>.`` and
  ``fer.<id>.status.``. A ZeroMQ socket belongs to one thread, so the streams do not send on it:
  each stream's sink (:class:`HubSink`) encodes its messages in the stream's own thread and puts
  them on a bounded queue that one sending thread (:class:`PublisherHub`) drains into the PUB
  socket. Putting never blocks (a full queue drops the message and counts it for its stream), and
  the PUB socket never blocks either, so no stream can slow another down;
* a stream whose source cannot be opened gets one ``ended`` status with ``detail``
  ``"error: ..."`` and the others go on (:func:`open_streams`); a stream that fails while
  running ends with its own ``ended`` status (``detail`` says why) and the others go on; a
  live stream that drops reports ``source_lost`` / ``reconnecting`` / ``recovered`` on its
  own topic, as a single stream does;
* the run ends when every stream has ended, or on :meth:`MultiRecognizer.stop` (Ctrl-C,
  SIGTERM, ``--duration``); :class:`MultiSummary` has one block per stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from realtime_fer.errors import ConfigError, FerError
from realtime_fer.pipeline.config import RuntimeConfig, StreamConfig
from realtime_fer.pipeline.recognizer import FrameCallback, Recognizer, RunSummary, open_recognizer
from realtime_fer.publish.publisher import Publisher
from realtime_fer.publish.schema import Message, Status, check_stream_id, encode

if TYPE_CHECKING:
    from realtime_fer.models.bundle import ModelBundle

log = logging.getLogger(__name__)

DEFAULT_HUB_QUEUE = 10_000
"""Encoded messages waiting for the sending thread, all streams together."""
_POLL_S = 0.1
_STOP = object()
_NORMAL_ENDS = ("end of file", "end of image", "stopped")


# --------------------------------------------------------------------------------------------
# which streams
# --------------------------------------------------------------------------------------------
def parse_source_arg(text: str) -> tuple[str | None, str]:
    """``"ID=SRC"`` -> ``(ID, SRC)``; anything else -> ``(None, text)``.

    The part before the first ``=`` is an id only when it is a valid stream id (letters, digits,
    ``_``, ``-``): so ``http://host/feed?x=1`` and ``./a=b.mp4`` stay sources.
    """
    head, sep, tail = text.partition("=")
    if sep and tail:
        try:
            check_stream_id(head)
        except FerError:
            return None, text
        return head, tail
    return None, text


def streams_from_sources(sources: Sequence[str], default_id: str = "cam0") -> list[StreamConfig]:
    """The streams of repeated ``--source`` options.

    One source without an id keeps ``default_id`` (``--stream-id``, else ``cam0``); several
    sources without ids are ``cam0``, ``cam1``, ... by position. ``ID=SRC`` names a stream.

    Raises:
        ConfigError: an id is used twice.
    """
    parsed = [parse_source_arg(s) for s in sources]
    streams: list[StreamConfig] = []
    for index, (sid, src) in enumerate(parsed):
        if sid is None:
            sid = default_id if len(parsed) == 1 else f"cam{index}"
        streams.append(StreamConfig(id=sid, source=src))
    check_unique_ids(streams)
    return streams


def check_unique_ids(streams: Sequence[StreamConfig]) -> None:
    """Raise :class:`ConfigError` naming the first id used by two streams."""
    seen: dict[str, str | int] = {}
    for stream in streams:
        if stream.id in seen:
            raise ConfigError(
                f"duplicate stream id {stream.id!r} (sources {seen[stream.id]!s} and {stream.source!s}); give each source its own id: --source ID=SRC"
            )
        seen[stream.id] = stream.source


def stream_config(config: RuntimeConfig, stream: StreamConfig) -> RuntimeConfig:
    """The run's config for one stream: its id in the topics, its capture overrides."""
    from dataclasses import replace

    return replace(
        config,
        publish=replace(config.publish, stream_id=stream.id),
        capture=stream.capture_options(config.capture),
        streams=[],
    )


# --------------------------------------------------------------------------------------------
# one PUB socket, one sending thread
# --------------------------------------------------------------------------------------------
class PublisherHub:
    """Owns a bound :class:`Publisher` and the one thread that sends on it.

    Streams get a :class:`HubSink` each (:meth:`sink`); what they send is queued (bounded,
    never blocking) and sent in order of arrival by the hub's thread. Messages queued before
    :meth:`start` wait for it. :meth:`close` sends what is queued, stops the thread and closes
    the socket.

    Counters: :attr:`sent`; per stream :attr:`dropped` (queue full).
    """

    def __init__(self, publisher: Publisher, queue_size: int = DEFAULT_HUB_QUEUE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.publisher = publisher
        self.endpoint = publisher.endpoint
        self.encoding = publisher.encoding
        self.sent = 0
        self.dropped: dict[str, int] = {}
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, name="fer-publisher", daemon=True)
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False

    def sink(self, stream_id: str) -> HubSink:
        """A message sink for one stream (closing it leaves the hub open)."""
        self.dropped.setdefault(stream_id, 0)
        return HubSink(self, stream_id)

    def put(self, stream_id: str, topic: str, payload: bytes) -> bool:
        """Queue one encoded message; False (counted) when the queue is full or the hub closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait((topic, payload))
            return True
        except queue.Full:
            with self._lock:
                self.dropped[stream_id] = self.dropped.get(stream_id, 0) + 1
            return False

    def start(self) -> None:
        """Start sending (idempotent)."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    def _loop(self) -> None:
        # from here on only this thread touches the socket (it was handed over at start())
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                topic, payload = item  # type: ignore[misc]
                if self.publisher.send_raw(topic, payload):
                    self.sent += 1
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self._error = exc
            log.error("the publisher thread failed: %s: %s", type(exc).__name__, exc)
        finally:
            self.publisher.close()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, stop the thread and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread.ident is None:  # never started: nothing was sent, close here
            self.publisher.close()
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("the publisher queue did not drain within %.1f s", timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the publisher thread did not finish within %.1f s", timeout)


class HubSink:
    """A :class:`~realtime_fer.pipeline.sinks.MessageSink` of one stream on a
    :class:`PublisherHub`: encodes in the caller's thread, never blocks."""

    def __init__(self, hub: PublisherHub, stream_id: str) -> None:
        self.hub = hub
        self.stream_id = stream_id
        self.messages = 0

    def send(self, message: Message) -> None:
        self.hub.put(self.stream_id, message.topic, encode(message, self.hub.encoding))
        self.messages += 1

    def close(self) -> None:
        """The stream is done; the hub stays open for the others."""


# --------------------------------------------------------------------------------------------
# the streams of one run
# --------------------------------------------------------------------------------------------
@dataclass
class StreamOutcome:
    """How one stream of a run went: its summary, or why it could not run."""

    id: str
    source: str
    summary: RunSummary | None = None
    error: str | None = None
    """Set when the stream could not be opened or failed while running."""

    def lines(self) -> list[str]:
        head = f"stream {self.id} ({self.source}): "
        if self.summary is None:
            return [head + f"did not start: {self.error}"]
        body = self.summary.lines()
        out = [head + body[0]] + ["  " + line for line in body[1:]]
        if self.error:
            out.append(f"  failed: {self.error}")
        return out


@dataclass
class MultiSummary:
    """One :class:`StreamOutcome` per stream, in the order the streams were given."""

    streams: list[StreamOutcome] = field(default_factory=list)
    dropped_by_hub: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[StreamOutcome]:
        return [s for s in self.streams if s.error is not None]

    def lines(self) -> list[str]:
        out: list[str] = []
        for s in self.streams:
            out.extend(s.lines())
            if self.dropped_by_hub.get(s.id):
                out.append(f"  {self.dropped_by_hub[s.id]} message(s) dropped before publishing (publisher queue full)")
        return out


class MultiRecognizer:
    """Runs several opened recognizers, each in its own thread, until all have ended.

    Args:
        recognizers: opened recognizers (owned: each closes itself when its run ends).
        failed: outcomes of the streams that could not be opened (reported in the summary).
        hub: the publisher hub the recognizers' sinks feed (owned: started by :meth:`run`,
            closed when every stream has ended).
        order: stream ids in the order of the summary (default: running, then failed).
    """

    def __init__(self, recognizers: Sequence[Recognizer], failed: Sequence[StreamOutcome], hub: PublisherHub | None, order: Sequence[str] | None = None) -> None:
        self.recognizers = list(recognizers)
        self.failed = list(failed)
        self.hub = hub
        self.order = list(order) if order is not None else [r.stream_id for r in self.recognizers] + [f.id for f in self.failed]
        self._outcomes: dict[str, StreamOutcome] = {f.id: f for f in self.failed}
        self._stop_requested = False
        self._ran = False

    def stop(self) -> None:
        """Ask every stream to finish after its current frame (thread- and signal-safe)."""
        self._stop_requested = True
        for rec in self.recognizers:
            rec.stop()

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def run(self) -> MultiSummary:
        """Run every stream to its end (or :meth:`stop`); then close the hub."""
        if self._ran:
            raise RuntimeError("a MultiRecognizer runs once")
        self._ran = True
        threads = [threading.Thread(target=self._run_one, args=(rec,), name=f"fer-{rec.stream_id}", daemon=True) for rec in self.recognizers]
        try:
            if self.hub is not None:
                self.hub.start()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(_POLL_S)  # short joins: the main thread stays free for signals
        finally:
            if self._stop_requested or any(t.is_alive() for t in threads):
                self.stop()
            for t, rec in zip(threads, self.recognizers):
                if t.ident is None:  # never started (interrupted while starting): release it here
                    rec.close()
                else:
                    t.join()
            if self.hub is not None:
                self.hub.close()
        return MultiSummary(
            [self._outcomes[sid] for sid in self.order if sid in self._outcomes],
            dict(self.hub.dropped) if self.hub is not None else {},
        )

    def _run_one(self, rec: Recognizer) -> None:
        outcome = StreamOutcome(rec.stream_id, rec.source.name)
        try:
            outcome.summary = rec.run()
            if outcome.summary.end_reason not in _NORMAL_ENDS:  # "error", "capture failed: ...", "gave up reconnecting ..."
                outcome.error = outcome.summary.end_reason
        except FerError as exc:
            outcome.error = str(exc)
            log.error("stream %s failed: %s", rec.stream_id, exc)
        except BaseException as exc:  # noqa: BLE001 - one stream's bug must not end the others
            outcome.error = f"unexpected {type(exc).__name__}: {exc}"
            log.error("stream %s failed: %s", rec.stream_id, outcome.error)
            log.debug("stream %s failed", rec.stream_id, exc_info=True)
        if outcome.summary is None:
            outcome.summary = rec.summary  # set by run() before it raised, after its clean-up
        self._outcomes[rec.stream_id] = outcome


def open_streams(
    streams: Sequence[StreamConfig],
    config: RuntimeConfig,
    hub: PublisherHub,
    *,
    bundle: ModelBundle | None = None,
    on_frame: FrameCallback | None = None,
) -> MultiRecognizer:
    """Open every stream (source, landmarker, models, warm-up), placed for ``len(streams)``.

    A stream that cannot be opened is logged, gets its ``ended`` status with ``detail``
    ``"error: <why>"`` on its own topic, and is listed in the summary; the others go on.

    Raises:
        ConfigError: two streams share an id.
        FerError: no stream could be opened (the message lists why for each).
    """
    from realtime_fer.affinity import expect_streams
    from realtime_fer.models.bundle import load_bundle

    check_unique_ids(streams)
    if not streams:
        raise ConfigError("no stream to run")
    bundle = bundle if bundle is not None else load_bundle(config.model)
    recognizers: list[Recognizer] = []
    failed: list[StreamOutcome] = []
    try:
        with expect_streams(len(streams)):
            for stream in streams:
                cfg = stream_config(config, stream)
                sink = hub.sink(stream.id)
                try:
                    rec = open_recognizer(stream.source, cfg, [sink], bundle=bundle, on_frame=on_frame)
                except FerError as exc:
                    log.error("stream %s cannot start: %s", stream.id, exc)
                    sink.send(Status(stream=stream.id, event="ended", timestamp=time.time(), detail=f"error: {exc}"))
                    failed.append(StreamOutcome(stream.id, str(stream.source), error=str(exc)))
                    continue
                recognizers.append(rec)
    except BaseException:
        for rec in recognizers:
            rec.close()
        raise
    if not recognizers:
        raise FerError("no stream could be opened: " + "; ".join(f"{f.id}: {f.error}" for f in failed))
    return MultiRecognizer(recognizers, failed, hub, order=[s.id for s in streams])
