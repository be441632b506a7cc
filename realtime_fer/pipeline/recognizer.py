"""The recognizer: capture thread -> :class:`FrameProcessor` -> message sinks, with status events.

:class:`Recognizer` runs the main loop of ``realtime-fer run`` and ``analyze``: it takes frames
from a :class:`~realtime_fer.capture.CaptureThread` (newest-wins for live sources, every frame
for files), runs each through the :class:`~realtime_fer.pipeline.processor.FrameProcessor`,
and sends to every sink, in order:

* ``started`` once, before the first frame;
* ``face_lost`` / ``face_found`` as tracks end and start, and ``no_face`` when no face is in
  view (on entering that state, then every ``no_face_interval_s``);
* one :class:`~realtime_fer.publish.Prediction` per decided face (every ``hop_seconds`` of source
  time; a face's first ones, before its window is full, are flagged ``partial``);
* ``source_lost`` / ``reconnecting`` / ``recovered`` from the capture thread (live sources keep
  running while the stream is down; the tracks end when it is lost);
* ``ended`` last, with the frame rate and the dropped-frame count.

With ``pipelined: true`` (the default) the main thread only takes frames and runs the
landmarker (:meth:`FrameProcessor.detect`); an :class:`OrderedWorker` thread does the rest of each
frame (:meth:`FrameProcessor.finish`: tracking, features, emotion models, attributions) and
sends every message, so frame k is scored while the landmarker works on frame k+1. For a live
source (or a file emulating one) the main thread takes its next frame only once no finished
landmarking waits for the worker (:meth:`OrderedWorker.wait_until_taken`), so a host that cannot
keep up processes fewer, fresh frames instead of queueing them between the stages, and a
:class:`~realtime_fer.pipeline.pacing.LivePacer` spaces the frames it takes so that each is
normally done before the next (``pacing``; the host's slack is shared by its streams). All messages
and all tracker state go through that one worker, in order; the display and ``on_frame`` still
run on the main thread, as each frame is finished. ``pipelined: false`` runs everything on the
main thread, one frame at a time; both modes send the same messages.

:meth:`Recognizer.stop` may be called from another thread or a signal handler; the loop then
finishes the current frame, stops and joins the capture thread, finishes every frame already
taken, sends ``ended`` and closes the landmarker and the sinks. :meth:`Recognizer.run` returns a :class:`RunSummary`.

Several recognizers (several cameras) run side by side, one thread each, on one publisher in
:mod:`realtime_fer.pipeline.multistream`.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from realtime_fer.affinity import describe_plan, pinned
from realtime_fer.capture.frame import CaptureEvent, Frame
from realtime_fer.capture.reader import CaptureThread
from realtime_fer.capture.sources import Source, open_source
from realtime_fer.features.selector import kernels_ready
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.pacing import LivePacer
from realtime_fer.pipeline.processor import FrameProcessor, FrameResult, PendingFrame
from realtime_fer.pipeline.sinks import MessageSink
from realtime_fer.pipeline.stats import RateMeter, Summary, TimingLog
from realtime_fer.pipeline.worker import OrderedWorker
from realtime_fer.publish.frames import FrameImageEncoder
from realtime_fer.publish.schema import Message, Status, StatusEvent

log = logging.getLogger(__name__)

#: Capture events forwarded as status messages (``started``/``ended`` are the recognizer's own).
_FORWARDED = ("source_lost", "reconnecting", "recovered")
_POLL_S = 0.1

FrameCallback = Callable[[Frame, FrameResult], None]


@dataclass
class RunSummary:
    """What a run did, for the summary line of ``run`` / ``analyze`` and for ``bench``."""

    source: str
    frames: int
    """Frames processed."""
    dropped: int
    """Frames the capture discarded because the pipeline was slower than a live source."""
    predictions: int
    faces: int
    """Face tracks started."""
    messages: int
    duration_s: float
    """From the first frame taken to the last one processed."""
    end_reason: str
    reconnects: int = 0
    latency: Summary = field(default_factory=lambda: Summary.of(()))
    """Capture -> publish of frames that produced predictions."""
    frame_latency: Summary = field(default_factory=lambda: Summary.of(()))
    """Capture -> done, every processed frame."""
    stages: dict[str, Summary] = field(default_factory=dict)
    stream: str = ""
    """The stream id (topics ``fer.<stream>.``)."""
    first_decision_s: float | None = None
    """From the capture of the first frame taken to the publishing of the first prediction;
    ``None`` when nothing was predicted."""

    @property
    def fps(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0

    def lines(self) -> list[str]:
        """A short human-readable summary."""
        out = [
            f"{self.frames} frames in {self.duration_s:.1f} s ({self.fps:.1f} fps), {self.dropped} dropped, "
            f"{self.predictions} predictions, {self.faces} face track(s), {self.messages} messages; ended: {self.end_reason}"
        ]
        if self.latency.n:
            out.append(f"capture->publish latency: median {self.latency.median_ms:.1f} ms, p95 {self.latency.p95_ms:.1f} ms")
        parts = [f"{name} {s.median_ms:.2f}" for name, s in self.stages.items() if s.n]
        if parts:
            out.append("stage medians (ms): " + ", ".join(parts))
        return out


class Recognizer:
    """Runs one source through the pipeline into message sinks.

    Args:
        source: an opened source (owned: closed when the run ends).
        processor: landmarker, tracker, selector and models for it (owned: closed at the end).
        sinks: where messages go (owned: closed at the end).
        config: the runtime configuration (status interval; stream id comes from the processor).
        display: optional live window, updated with every frame; the run stops when it is closed.
        on_frame: optional callback after every processed frame (tests, benchmarks).
    """

    def __init__(
        self,
        source: Source,
        processor: FrameProcessor,
        sinks: Sequence[MessageSink],
        config: RuntimeConfig,
        *,
        display: object | None = None,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self.source = source
        self.processor = processor
        self.sinks = list(sinks)
        self.config = config
        self.display = display
        self.on_frame = on_frame
        self.stream_id = processor.stream_id
        self.timings = TimingLog()
        self.capture: CaptureThread | None = None
        self._still = source.kind == "image"
        self._stop_requested = False  # a plain flag: safe to set from a signal handler
        self._ran = False
        self._closed = False
        self._rate = RateMeter()
        self._messages = 0
        self._predictions = 0
        self._frames = 0
        """Frames finished (scored, explained and published)."""
        self._worker: OrderedWorker | None = None
        self._pacer: LivePacer | None = None
        self._finished: queue.SimpleQueue[tuple[Frame, FrameResult]] = queue.SimpleQueue()
        self._t_first: float | None = None
        self._t_first_capture: float | None = None  # capture time of the first frame taken
        self._first_decision_s: float | None = None
        self._t_last: float | None = None
        self._in_no_face = False
        self._last_no_face = 0.0
        self._source_lost = False
        self.summary: RunSummary | None = None
        """The run's summary once :meth:`run` has finished (also when it raised)."""
        self._frame_images = FrameImageEncoder(config.frames, self.stream_id) if config.frames.enabled else None

    # -- control ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to finish after the current frame (thread- and signal-safe)."""
        self._stop_requested = True

    @property
    def frames(self) -> int:
        """Frames finished so far (scored, explained, published)."""
        return self._frames

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def run(self) -> RunSummary:
        """Process frames until the source ends or :meth:`stop` is called; then clean up."""
        if self._ran:
            raise RuntimeError("a Recognizer runs once")
        self._ran = True
        from threadpoolctl import threadpool_limits

        plan = self.processor.cpus
        # numpy's BLAS (the attributions) on config.blas_threads threads; this thread runs the landmarker
        with threadpool_limits(limits=self.config.blas_threads, user_api="blas"), pinned(plan.landmarker if plan else None):
            return self._run(plan.others if plan else None)

    def _run(self, other_cpus: frozenset[int] | None) -> RunSummary:
        cap = CaptureThread(self.source, self.config.capture, cpus=other_cpus)
        self.capture = cap
        if self.config.pipelined:
            self._worker = OrderedWorker(name=f"fer-{self.stream_id}-worker", cpus=other_cpus)
        worker_error: BaseException | None = None
        try:
            self._send_status("started", detail=self._describe())
            cap.start()  # from here on the capture thread owns (and closes) the source
            live = cap.is_live or cap.emulating_live
            pacer = LivePacer(self.config.pacing) if live and self.config.pacing.enabled else None
            self._pacer = pacer
            beat = self.config.heartbeat_interval_s
            next_beat = time.monotonic() + beat if beat else None
            while not self._stop_requested:
                self._forward_events(cap)
                if next_beat is not None and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + beat
                    self._send_status("heartbeat", detail="source lost" if self._source_lost else "")
                if live and self._worker is not None:
                    self._worker.wait_until_taken()  # then take the newest frame, not one that would wait
                if pacer is not None and (wait := pacer.wait_s()) > 0:  # the host is slower than the source
                    time.sleep(min(wait, _POLL_S))
                    continue
                try:
                    frame = cap.get(timeout=_POLL_S, captured_after=pacer.captured_after() if pacer is not None else None)
                except queue.Empty:
                    continue
                if frame is None:
                    break
                self._process(frame, pacer.taken() if pacer is not None else None)
        finally:
            if cap.ident is not None:  # started
                cap.stop()
            else:
                self.source.close()
            worker_error = self._stop_worker()  # from here on, messages are sent from this thread
            self._deliver()
            self._forward_events(cap)
            reason = cap.end_reason if cap.end_reason and not cap.is_alive() else "stopped"
            if worker_error is not None:
                reason = "error"
            self._end_tracks("end of run")
            self._send_status("ended", detail=reason, fps=self._average_fps())
            summary = self._summary(reason)
            self.summary = summary
            self.close()
        if worker_error is not None:
            raise worker_error
        return summary

    def _stop_worker(self) -> BaseException | None:
        """Finish the frames already taken and join the worker; returns what a job raised."""
        worker, self._worker = self._worker, None  # later messages are sent from this thread
        if worker is None:
            return None
        try:
            worker.close()
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() after the clean-up
            log.error("the pipeline worker failed: %s: %s", type(exc).__name__, exc)
            return exc
        return None

    def close(self) -> None:
        """Release the landmarker, the sinks and the source. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.capture is None or self.capture.ident is None:  # never started: close it here
            self.source.close()
        self.processor.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's outcome
                log.error("closing a message sink failed: %s: %s", type(exc).__name__, exc)
                log.debug("closing a message sink failed", exc_info=True)
        close = getattr(self.display, "close", None)
        if close is not None:
            close()

    # -- internals ----------------------------------------------------------------------------
    def _describe(self) -> str:
        s = self.source
        fps = f"{s.fps:.2f} fps" if s.fps else "fps unknown"
        return (
            f"{s.name} ({s.kind}, {s.width}x{s.height}, {fps}); model {self.processor.bundle.path.name} "
            f"({len(self.processor.emotions)} emotions, window {self.processor.window_length} samples over {self.processor.window.span_s:.2f} s, "
            f"hop {self.processor.window.hop_s:.3f} s, partial after {self.processor.min_samples} samples) "
            f"on {self.processor.models.provider}; landmarker delegate {self.processor.detector.delegate}; "
            + describe_plan(self.processor.cpus)
        )

    def _send(self, message: Message) -> None:
        for sink in self.sinks:
            sink.send(message)
        self._messages += 1

    def _emit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the worker after the frames already taken (or now, without one)."""
        if self._worker is not None:
            self._worker.submit(job)
        else:
            job()

    def _send_status(self, event: StatusEvent, *, detail: str = "", face: int | None = None, fps: float | None = None, timestamp: float | None = None) -> None:
        """Send a status after the frames already taken (its counts are those of that moment)."""
        when = time.time() if timestamp is None else timestamp
        self._emit(lambda: self._send(self._status(event, detail=detail, face=face, fps=fps, timestamp=when)))

    def _status(self, event: StatusEvent, *, detail: str = "", face: int | None = None, fps: float | None = None, timestamp: float | None = None) -> Status:
        cap = self.capture
        return Status(
            stream=self.stream_id,
            event=event,
            timestamp=time.time() if timestamp is None else timestamp,
            fps=self._rate.rate() if fps is None else fps,
            frames=self._frames,
            dropped=cap.dropped if cap is not None else 0,
            detail=detail,
            face=face,
            faces=self.processor.live_tracks,
        )

    def _forward_events(self, cap: CaptureThread) -> None:
        while True:
            try:
                event: CaptureEvent = cap.events.get_nowait()
            except queue.Empty:
                return
            if event.kind not in _FORWARDED:
                continue
            if event.kind == "source_lost":
                self._emit(functools.partial(self._end_tracks, "source lost"))
            if event.kind in ("source_lost", "recovered"):
                self._source_lost = event.kind == "source_lost"
            self._send_status(event.kind, detail=event.detail, timestamp=event.timestamp)

    def _end_tracks(self, detail: str) -> None:
        """End every live track and send its ``face_lost`` (worker order)."""
        for track_id in self.processor.end_tracks():
            self._send(self._status("face_lost", face=track_id, detail=detail))

    def _process(self, frame: Frame, t_taken: float | None = None) -> None:
        """Detect the faces of ``frame`` here; finish it on the worker (or here, without one).
        ``t_taken``: when a paced live stream took it (:class:`LivePacer`)."""
        if self._t_first is None:
            self._t_first = time.perf_counter()
            self._t_first_capture = frame.t_capture
        pending = self.processor.detect(frame, still=self._still)
        self._emit(functools.partial(self._finish, pending, t_taken))
        self._deliver()

    def _finish(self, pending: PendingFrame, t_taken: float | None = None) -> None:
        """Track, score and explain one detected frame and send its messages (worker thread)."""
        result = self.processor.finish(pending)
        frame = result.frame
        self._frames += 1
        t_pub = time.perf_counter()
        for track_id in result.lost:
            self._send(self._status("face_lost", face=track_id))
        for track_id in result.found:
            self._send(self._status("face_found", face=track_id))
        if not result.faces and self.processor.live_tracks == 0:
            now = time.monotonic()
            if not self._in_no_face or now - self._last_no_face >= self.config.no_face_interval_s:
                self._in_no_face = True
                self._last_no_face = now
                self._send(self._status("no_face"))
        else:
            self._in_no_face = False
        predictions = result.predictions
        for prediction in predictions:
            self._send(prediction)
        self._predictions += len(predictions)
        if self._frame_images is not None:  # after its predictions: a display pairs them by frame index
            t_source = frame.source_pos_ms / 1000.0 if frame.source_pos_ms is not None else frame.t_capture
            image = self._frame_images.encode(frame.image, frame.index, frame.timestamp, t_source)
            if image is not None:
                self._send(image)
        t_done = time.perf_counter()
        if t_taken is not None and self._pacer is not None:
            self._pacer.done(t_taken, t_done)
        self._t_last = t_done
        self._rate.tick(t_done)
        times = result.times
        self.timings.add("landmarks", times.landmarks)
        self.timings.add("features", times.features)
        if times.scored:
            self.timings.add("inference", times.inference)
            self.timings.add("explain", times.explain)
            self.timings.add("explain/face", times.explain / times.scored)
        self.timings.add("publish", t_done - t_pub)
        self.timings.add("frame_latency", t_done - frame.t_capture)
        if predictions:
            self.timings.add("latency", t_done - frame.t_capture)
            if self._first_decision_s is None and self._t_first_capture is not None:
                self._first_decision_s = t_done - self._t_first_capture
        if self.display is not None or self.on_frame is not None:
            self._finished.put((frame, result))

    def _deliver(self) -> None:
        """Show the finished frames and hand them to ``on_frame`` (main thread)."""
        while True:
            try:
                frame, result = self._finished.get_nowait()
            except queue.Empty:
                return
            if self.display is not None and not self.display.update(frame, result):  # type: ignore[attr-defined]
                log.info("display window closed; stopping")
                self.stop()
            if self.on_frame is not None:
                self.on_frame(frame, result)

    def _average_fps(self) -> float:
        if self._t_first is None or self._t_last is None or self._frames < 2 or self._t_last <= self._t_first:
            return 0.0
        return self._frames / (self._t_last - self._t_first)

    def _summary(self, reason: str) -> RunSummary:
        cap = self.capture
        duration = (self._t_last - self._t_first) if self._t_first is not None and self._t_last is not None else 0.0
        return RunSummary(
            source=self.source.name,
            frames=self._frames,
            dropped=cap.dropped if cap is not None else 0,
            predictions=self._predictions,
            faces=self.processor.tracker.total_tracks,
            messages=self._messages,
            duration_s=duration,
            end_reason=reason,
            reconnects=cap.reconnects if cap is not None else 0,
            latency=self.timings.summary("latency"),
            frame_latency=self.timings.summary("frame_latency"),
            stages={name: self.timings.summary(name) for name in ("landmarks", "features", "inference", "explain", "publish")},
            stream=self.stream_id,
            first_decision_s=self._first_decision_s,
        )


def open_recognizer(
    source: str | int,
    config: RuntimeConfig,
    sinks: Sequence[MessageSink],
    *,
    bundle: ModelBundle | None = None,
    display: object | None = None,
    on_frame: FrameCallback | None = None,
) -> Recognizer:
    """Load the bundle, open the source, create the landmarker and warm everything up.

    Fails fast and in this order, each with a :class:`~realtime_fer.errors.FerError`: a missing
    or corrupt bundle, a source that cannot be opened, a missing landmarker model. On failure
    everything opened so far is closed (the sinks are the caller's until this returns).
    """
    from realtime_fer.models.bundle import load_bundle

    bundle = bundle if bundle is not None else load_bundle(config.model)
    src = open_source(source, config.capture)
    try:
        processor = FrameProcessor.create(config, bundle)
        try:
            seconds = processor.warm_up(block=False)
            log.info("pipeline warm-up %.2f s (Numba kernels: %s)", seconds, "ready" if kernels_ready() else "compiling in the background")
            return Recognizer(src, processor, sinks, config, display=display, on_frame=on_frame)
        except BaseException:
            processor.close()
            raise
    except BaseException:
        src.close()
        raise
