"""The capture thread: reads a :class:`~realtime_fer.capture.sources.Source` into a bounded queue.

Live sources (cameras, streams): the newest frame wins. When the consumer is slower than the
source, the stale frames waiting in the queue are discarded and counted in
:attr:`CaptureThread.dropped` (when the queue is full, and when the consumer takes a frame: it
gets the newest one waiting), so latency never builds up. A live source that stops delivering
is reopened with exponential backoff while the consumer keeps running; the thread reports
``source_lost`` / ``reconnecting`` / ``recovered`` events.

Files and still images: every frame is delivered (the thread waits while the queue is full);
``realtime=True`` paces them at the file's frame rate. The end of the file ends the run: an
``ended`` event, then :meth:`CaptureThread.get` returns ``None``.

A file read with ``emulate_live=True`` behaves as a live camera filming it: paced, the newest
frame wins, each frame stamped with its due time (when the camera would have captured it, so
latency counts from there and windows in seconds span the same source time however many frames
are dropped), and a frame the reader itself got to more than one frame period late is dropped.

Typical use::

    source = open_source("video.mp4")           # raises SourceError with a clear message
    with CaptureThread(source, on_event=print) as cap:
        for frame in cap:                       # ends at the end of the file / after stop()
            process(frame.image, frame.timestamp)
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from typing import Callable, Collection, Iterator

import numpy as np

from realtime_fer.affinity import pin_current_thread
from realtime_fer.capture.frame import CaptureEvent, CaptureEventKind, Frame
from realtime_fer.capture.options import CaptureOptions
from realtime_fer.capture.sources import Source
from realtime_fer.errors import SourceError

log = logging.getLogger(__name__)

_END = object()  # sentinel put in the frame queue after the last frame
_POLL_S = 0.1  # granularity at which blocking waits notice stop()
_EVENT_QUEUE_SIZE = 1000

EventCallback = Callable[[CaptureEvent], None]


class _RateMeter:
    """Frames per second over the last ``n`` timestamps."""

    def __init__(self, n: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=n)

    def tick(self, t: float) -> None:
        self._times.append(t)

    def rate(self) -> float:
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class CaptureThread(threading.Thread):
    """Reads frames from ``source`` in a daemon thread into a bounded queue.

    Args:
        source: an opened source (see :func:`~realtime_fer.capture.sources.open_source`). The
            thread owns it from :meth:`start` on and closes it when it finishes.
        options: queue sizes, pacing and reconnect policy; default: ``source.options``. When
            given, it also replaces ``source.options``, so reopen timeouts follow it.
        on_event: called from the capture thread with every :class:`CaptureEvent` (keep it
            quick). Events also go to :attr:`events`, a queue the consumer may poll instead.

    Counters (read them from any thread): :attr:`frames_read`, :attr:`dropped`,
    :attr:`reconnects`; :meth:`measured_fps` is the capture rate over the last 30 frames.
    """

    def __init__(
        self,
        source: Source,
        options: CaptureOptions | None = None,
        *,
        on_event: EventCallback | None = None,
        name: str = "fer-capture",
        cpus: Collection[int] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.source = source
        self.options = options or source.options
        source.options = self.options
        self.is_live = source.is_live
        self.emulating_live = self.options.emulate_live and not self.is_live and bool(source.fps)
        """A file read as a live camera (:attr:`CaptureOptions.emulate_live`)."""
        size = self.options.queue_size if self.is_live or self.emulating_live else self.options.file_queue_size
        self._frames: queue.Queue[object] = queue.Queue(maxsize=size)
        self.events: queue.Queue[CaptureEvent] = queue.Queue(maxsize=_EVENT_QUEUE_SIZE)
        """Every event in order (the oldest are discarded beyond 1000 unread events)."""
        self._on_event = on_event
        self._stop_requested = threading.Event()
        self._cpus = cpus
        self._ended = False  # consumer side: the end sentinel was taken
        self._launched = False
        self._meter = _RateMeter()
        self.frames_read = 0
        """Frames read from the source so far."""
        self._count_lock = threading.Lock()
        self.dropped = 0
        """Stale frames discarded because the consumer was slower than a live source (or an
        emulated one: also the frames its reader got to too late)."""
        self.reconnects = 0
        """Times a lost live source was successfully reopened."""
        self.end_reason: str | None = None
        """Why the thread finished (``end of file``, ``stopped``, ...); ``None`` while running."""
        self.error: BaseException | None = None
        """An unexpected exception that ended the thread, if any (it is also logged)."""

    # -- consumer API ----------------------------------------------------------------------
    def get(self, timeout: float | None = None, captured_after: float | None = None) -> Frame | None:
        """The next frame, or ``None`` once the capture has ended (end of file, still image
        served, gave up reconnecting) or :meth:`stop` was called.

        ``captured_after`` (live sources, ``time.perf_counter()`` seconds): a waiting frame
        captured before this moment is dropped (and counted) and the next one awaited.

        Raises:
            queue.Empty: no frame arrived within ``timeout`` seconds (a live source may be
                reconnecting; the capture goes on).
        """
        if self._ended:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop_requested.is_set():
                self._ended = True
                return None
            wait = _POLL_S if deadline is None else min(_POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                item = self._frames.get(timeout=wait) if wait > 0 else self._frames.get_nowait()
            except queue.Empty:
                if not self.is_alive() and self._frames.empty() and self._started_once():
                    self._ended = True
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                continue
            if item is _END:
                self._ended = True
                return None
            if self.is_live or self.emulating_live:
                frame = self._newest(item)  # type: ignore[arg-type]
                if captured_after is not None and frame is not None and frame.t_capture < captured_after:
                    with self._count_lock:
                        self.dropped += 1  # stale: captured before the consumer was ready for it
                    continue
                return frame
            return item  # type: ignore[return-value]

    def _newest(self, frame: Frame) -> Frame | None:
        """Live: the newest of ``frame`` and the frames waiting behind it; the older ones are
        dropped and counted (the end sentinel stays queued for the next :meth:`get`)."""
        q = self._frames
        with q.mutex:
            while q.queue and q.queue[0] is not _END:
                frame = q.queue.popleft()  # type: ignore[assignment]
                with self._count_lock:
                    self.dropped += 1
            q.not_full.notify()
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the capture ends."""
        while (frame := self.get()) is not None:
            yield frame

    @property
    def ended(self) -> bool:
        """True once :meth:`get` has returned ``None``."""
        return self._ended

    def measured_fps(self) -> float:
        """Capture rate over the last 30 frames read (0 before two frames)."""
        return self._meter.rate()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to finish and wait up to ``timeout`` seconds for it.

        Waiting frames are discarded; :meth:`get` returns ``None`` from now on. A thread blocked
        inside a network read cannot be interrupted; it is a daemon thread and finishes (closing
        the source) when the read returns, at the latest after ``read_timeout_s``.

        Returns:
            True when the thread has finished.
        """
        self._stop_requested.set()
        if threading.current_thread() is self or not self._started_once():
            return not self.is_alive()
        self.join(timeout)
        if self.is_alive():
            log.warning("capture thread is still blocked reading %s; it will exit when the read returns", self.source.name)
            return False
        return True

    def __enter__(self) -> CaptureThread:
        if not self._started_once():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread body -----------------------------------------------------------------------
    def run(self) -> None:
        pin_current_thread(self._cpus)
        self._emit("started", detail=f"{self.source.name} ({'live' if self.is_live else self.source.kind})")
        reason = "stopped"
        try:
            if self.is_live:
                reason = self._run_live()
            else:
                reason = self._run_emulated_live() if self.emulating_live else self._run_file()
        except Exception as exc:  # unexpected: report it instead of dying silently
            log.exception("capture thread failed")
            self.error = exc
            reason = f"capture failed: {exc}"
        finally:
            self.source.close()
            self.end_reason = reason
            self._emit("ended", detail=reason)
            self._put_end()

    def _run_file(self) -> str:
        opts = self.options
        pace = opts.realtime and bool(self.source.fps)
        t_start: float | None = None
        pos_start: float | None = None
        while not self._stop_requested.is_set():
            item = self.source.read()
            if item is None:
                return "end of file" if self.source.kind == "file" else "end of image"
            image, pos_ms = item
            if pace:
                now = time.perf_counter()
                if t_start is None:
                    t_start, pos_start = now, pos_ms
                if pos_ms is not None and pos_start is not None:
                    due = t_start + (pos_ms - pos_start) / 1000.0
                else:
                    due = t_start + self.frames_read / float(self.source.fps)  # type: ignore[arg-type]
                if due > now and self._stop_requested.wait(due - now):
                    break
            frame = self._make_frame(image, pos_ms)
            if not self._put_blocking(frame):
                break
        return "stopped"

    def _run_emulated_live(self) -> str:
        """A file as a camera delivers it (see the module docs)."""
        period = 1.0 / float(self.source.fps)  # type: ignore[arg-type]
        t_start: float | None = None
        pos_start = 0.0
        n = 0
        while not self._stop_requested.is_set():
            item = self.source.read()
            if item is None:
                return "end of file"
            image, pos_ms = item
            now = time.perf_counter()
            if t_start is None:
                t_start, pos_start = now, pos_ms if pos_ms is not None else 0.0
            offset = (pos_ms - pos_start) / 1000.0 if pos_ms is not None else n * period
            n += 1
            due = t_start + offset
            if due > now:
                if self._stop_requested.wait(due - now):
                    break
            elif now - due > period:  # the camera took this frame long ago and did not wait
                self.frames_read += 1
                with self._count_lock:
                    self.dropped += 1
                continue
            self._put_latest(self._make_frame(image, None, t_capture=due))
        return "stopped"

    def _run_live(self) -> str:
        while not self._stop_requested.is_set():
            item = self.source.read()
            if self._stop_requested.is_set():
                break
            if item is None:
                outcome = self._reconnect()
                if outcome is not None:
                    return outcome
                continue
            self._put_latest(self._make_frame(item[0], None))
        return "stopped"

    def _reconnect(self) -> str | None:
        """Reopen a lost live source with exponential backoff. ``None`` when it is back,
        else the reason the run ends."""
        opts = self.options
        lost_at = time.monotonic()
        self._emit("source_lost", detail=f"{self.source.name}: no frame (stream ended, read failed or timed out)")
        self.source.close()
        delay = opts.reconnect_initial_s
        attempt = 0
        while not self._stop_requested.is_set():
            attempt += 1
            if opts.max_reconnect_attempts is not None and attempt > opts.max_reconnect_attempts:
                return f"gave up reconnecting to {self.source.name} after {attempt - 1} attempt(s)"
            self._emit("reconnecting", detail=f"attempt {attempt} in {delay:.1f} s", attempt=attempt, delay_s=delay)
            if self._stop_requested.wait(delay):
                break
            try:
                self.source.reopen()
            except SourceError as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)
                delay = min(delay * 2.0, opts.reconnect_max_s)
                continue
            self.reconnects += 1
            down = time.monotonic() - lost_at
            self._emit("recovered", detail=f"{self.source.name} back after {down:.1f} s", attempt=attempt)
            return None
        return "stopped"

    def _make_frame(self, image: np.ndarray, pos_ms: float | None, t_capture: float | None = None) -> Frame:
        now = time.perf_counter()
        if t_capture is None:
            t_capture = now
        frame = Frame(index=self.frames_read, image=image, timestamp=time.time() - (now - t_capture), t_capture=t_capture, source_pos_ms=pos_ms)
        self.frames_read += 1
        self._meter.tick(t_capture)
        return frame

    def _put_blocking(self, item: object) -> bool:
        """Wait for room (files); False when stopped meanwhile."""
        while not self._stop_requested.is_set():
            try:
                self._frames.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _put_latest(self, frame: Frame) -> None:
        """Newest frame wins (live): discard the oldest waiting frame when the queue is full."""
        while True:
            try:
                self._frames.put_nowait(frame)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._frames.get_nowait()
                    with self._count_lock:
                        self.dropped += 1

    def _put_end(self) -> None:
        """Queue the end sentinel; once stop() was called, make room for it by discarding."""
        while True:
            try:
                self._frames.put(_END, timeout=_POLL_S)
                return
            except queue.Full:
                if self._stop_requested.is_set():
                    with contextlib.suppress(queue.Empty):
                        self._frames.get_nowait()

    def _emit(self, kind: CaptureEventKind, detail: str = "", attempt: int = 0, delay_s: float = 0.0) -> None:
        event = CaptureEvent(kind=kind, timestamp=time.time(), detail=detail, attempt=attempt, delay_s=delay_s)
        level = logging.WARNING if kind in ("source_lost",) else logging.INFO
        log.log(level, "capture %s: %s", kind, detail)
        while True:
            try:
                self.events.put_nowait(event)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.events.get_nowait()
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("capture event callback failed for %s", kind)

    def start(self) -> None:
        """Start reading (once)."""
        self._launched = True
        super().start()

    def _started_once(self) -> bool:
        return self._launched
