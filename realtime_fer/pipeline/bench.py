"""``realtime-fer bench``: where the time of the pipeline goes, against a bare landmarker loop.

For a **video file** (or image) three passes run over the same frames:

1. *staged*: one thread reads the file and runs each stage in turn, timing every frame's
   ``decode`` (``Source.read``), ``landmarks``, ``features`` (tracking, normalisation into the
   ring buffers, gathering), ``inference`` (all emotion models, on scoring frames only; also
   given amortised per frame) and ``publish`` (encoding and sending on a bound ZeroMQ PUB socket
   with one subscriber process draining it). The decoded frames are kept in memory for pass 2.
2. *bare*: a fresh VIDEO-mode Face Landmarker alone over the decoded frames (no decoding), on
   the landmarker's CPU when ``pin_threads`` is on (see :mod:`realtime_fer.affinity`).
3. *end-to-end*: the real :class:`~realtime_fer.pipeline.recognizer.Recognizer` (capture thread
   decoding the file, every stage, publishing to a draining subscriber), frames per second from
   its first frame to its last.

Passes 2 and 3 alternate ``repeat`` times. Each pair gives a ratio (end-to-end over bare fps),
and the report's ratio is the median of those: the two passes of a pair run back to back under
the same load, which on a shared machine drifts more between pairs than within one.

For a **live source** (camera, stream) the recognizer runs for ``duration`` seconds; the report
gives its stage times and capture-to-publish latency, and the bare landmarker then runs over up
to :data:`LIVE_KEEP_FRAMES` of the frames it saw.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime_fer.affinity import describe_plan, pinned, plan_cpus, usable_cpus
from realtime_fer.capture.frame import Frame
from realtime_fer.capture.sources import open_source, parse_source
from realtime_fer.errors import FerError
from realtime_fer.landmarks.detector import FaceLandmarkDetector
from realtime_fer.models.bundle import ModelBundle, load_bundle
from realtime_fer.pipeline.config import RuntimeConfig, config_for_bundle
from realtime_fer.pipeline.processor import FrameProcessor, FrameResult
from realtime_fer.pipeline.recognizer import Recognizer
from realtime_fer.pipeline.sinks import PublisherSink
from realtime_fer.pipeline.stats import Summary, TimingLog
from realtime_fer.publish.publisher import Publisher
from realtime_fer.publish.schema import Status

log = logging.getLogger(__name__)

LIVE_KEEP_FRAMES = 300
_BENCH_ENDPOINT = "tcp://127.0.0.1:0"


@dataclass
class BenchReport:
    """Measured figures of one ``bench`` run (times in ms unless named otherwise)."""

    source: str
    live: bool
    frames: int
    width: int
    height: int
    source_fps: float | None
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    stages: dict[str, Summary]
    """decode, landmarks, features, inference (per scoring step), inference/frame, explain/face
    (attributions per scored face), explain/frame, publish."""
    landmarks_ms_per_frame: float
    """Mean landmark time per frame."""
    after_landmarks_ms_per_frame: float
    """Mean per frame of features + inference and attributions (amortised over all frames) +
    publish."""
    pipeline_fps: list[float]
    """End-to-end frames per second of each recognizer pass."""
    bare_fps: list[float]
    """Frames per second of each bare landmarker pass."""
    latency: Summary
    """Capture -> publish of frames with predictions (end-to-end passes)."""
    frame_latency: Summary
    dropped: int
    predictions: int
    warm_up_s: float
    provider: str
    delegate: str
    threads: str = ""
    """Where the threads ran: the CPU plan, or that they were not pinned; pipelined or serial."""
    attributions_ms_per_frame: float = 0.0
    """The attributions' share of :attr:`after_landmarks_ms_per_frame`."""
    notes: list[str] = field(default_factory=list)

    @property
    def after_landmarks_ratio(self) -> float:
        return self.after_landmarks_ms_per_frame / self.landmarks_ms_per_frame if self.landmarks_ms_per_frame > 0 else float("nan")

    @property
    def models_ms_per_frame(self) -> float:
        """Features + emotion models + publishing per frame: the issue's "after the landmarks"
        budget, without the attributions."""
        return self.after_landmarks_ms_per_frame - self.attributions_ms_per_frame

    @property
    def models_ratio(self) -> float:
        return self.models_ms_per_frame / self.landmarks_ms_per_frame if self.landmarks_ms_per_frame > 0 else float("nan")

    @property
    def pair_ratios(self) -> list[float]:
        """End-to-end fps over bare fps of each pass pair (the two passes of a pair run back to
        back, so they share the machine's load at that moment)."""
        return [p / b for p, b in zip(self.pipeline_fps, self.bare_fps) if b > 0]

    @property
    def throughput_ratio(self) -> float:
        """The median of :attr:`pair_ratios`: a paired estimate, robust to the load drifting
        between pairs (on a shared VM, bare passes alone varied by up to 25 %)."""
        ratios = self.pair_ratios
        return float(np.median(ratios)) if ratios else float("nan")

    @property
    def throughput_ratio_of_medians(self) -> float:
        """Median end-to-end fps over median bare fps (unpaired)."""
        if not self.pipeline_fps or not self.bare_fps:
            return float("nan")
        return float(np.median(self.pipeline_fps) / np.median(self.bare_fps))

    #: The live latency target is two frame periods of a 30 fps camera.
    target_fps: float = 30.0

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 / self.target_fps

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "live": self.live,
            "frames": self.frames,
            "size": [self.width, self.height],
            "source_fps": self.source_fps,
            "loadavg_before": list(self.loadavg_before),
            "loadavg_after": list(self.loadavg_after),
            "stages": {k: v.to_dict() for k, v in self.stages.items()},
            "landmarks_ms_per_frame": self.landmarks_ms_per_frame,
            "after_landmarks_ms_per_frame": self.after_landmarks_ms_per_frame,
            "after_landmarks_ratio": self.after_landmarks_ratio,
            "attributions_ms_per_frame": self.attributions_ms_per_frame,
            "models_ms_per_frame": self.models_ms_per_frame,
            "models_ratio": self.models_ratio,
            "pipeline_fps": self.pipeline_fps,
            "bare_fps": self.bare_fps,
            "pair_ratios": self.pair_ratios,
            "throughput_ratio": self.throughput_ratio,
            "throughput_ratio_of_medians": self.throughput_ratio_of_medians,
            "latency": self.latency.to_dict(),
            "frame_latency": self.frame_latency.to_dict(),
            "dropped": self.dropped,
            "predictions": self.predictions,
            "warm_up_s": self.warm_up_s,
            "provider": self.provider,
            "delegate": self.delegate,
            "threads": self.threads,
            "notes": self.notes,
        }


_DRAIN_CODE = """
import sys, zmq
sock = zmq.Context.instance().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"fer.")
sock.connect(sys.argv[1])
while True:
    sock.recv_multipart()
"""


class _Drain:
    """A subscriber in a separate process that receives and discards everything: a realistic
    consumer on the same machine that does not share the recognizer's interpreter (GIL)."""

    def __init__(self, endpoint: str) -> None:
        import subprocess
        import sys

        self._proc = subprocess.Popen([sys.executable, "-c", _DRAIN_CODE, endpoint], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if usable_cpus():  # like any subscriber, free to run on every CPU (not the parent thread's)
            try:
                os.sched_setaffinity(self._proc.pid, usable_cpus())
            except OSError:
                pass
        time.sleep(0.5)  # let it start and its subscription reach the publisher

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(2)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            self._proc.kill()
            self._proc.wait(2)


def _bare_pass(images: list[np.ndarray], timestamps: list[int], config: RuntimeConfig) -> float:
    """Frames per second of a VIDEO-mode landmarker alone over ``images``, on the same CPU as
    the pipeline's landmarker when ``pin_threads`` is on (pinned, it runs faster too)."""
    plan = plan_cpus(config.pin_threads)
    with pinned(plan.landmarker if plan else None):
        return _bare_loop(images, timestamps, config)


def _bare_loop(images: list[np.ndarray], timestamps: list[int], config: RuntimeConfig) -> float:
    with FaceLandmarkDetector(config.landmarker, running_mode="video") as det:
        det.detect_for_video(images[0], 0)  # first-call set-up is not throughput
        t0 = time.perf_counter()
        for img, ts in zip(images[1:], timestamps[1:]):
            det.detect_for_video(img, ts)
        elapsed = time.perf_counter() - t0
    return (len(images) - 1) / elapsed if elapsed > 0 else 0.0


def _staged_pass(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, max_frames: int | None) -> tuple[TimingLog, list[np.ndarray], list[int], dict[str, Any]]:
    plan = plan_cpus(config.pin_threads)
    with pinned(plan.landmarker if plan else None):  # every stage on the landmarker's CPU, one at a time
        return _staged_loop(source_arg, config, bundle, max_frames)


def _staged_loop(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, max_frames: int | None) -> tuple[TimingLog, list[np.ndarray], list[int], dict[str, Any]]:
    timings = TimingLog()
    src = open_source(source_arg, config.capture)
    info = {"name": src.name, "width": src.width, "height": src.height, "fps": src.fps, "kind": src.kind}
    processor = FrameProcessor.create(config, bundle)
    publisher = Publisher.from_options(_bench_publish_options(config))
    drain = _Drain(publisher.endpoint)
    images: list[np.ndarray] = []
    stamps: list[int] = []
    try:
        info["warm_up_s"] = processor.warm_up()
        info["provider"] = processor.models.provider
        info["delegate"] = processor.detector.delegate
        still = src.kind == "image"
        index = 0
        while max_frames is None or index < max_frames:
            t0 = time.perf_counter()
            item = src.read()
            t1 = time.perf_counter()
            if item is None:
                break
            image, pos_ms = item
            if index > 0:  # the first frame was decoded while opening
                timings.add("decode", t1 - t0)
            frame = Frame(index=index, image=image, timestamp=time.time(), t_capture=t1, source_pos_ms=pos_ms)
            result = processor.process(frame, still=still)
            stamps.append(result.timestamp_ms)
            images.append(image)
            t2 = time.perf_counter()
            for track_id in result.found:
                publisher.publish(Status(stream=publisher.stream_id, event="face_found", timestamp=time.time(), face=track_id, frames=index + 1))
            for prediction in result.predictions:
                publisher.publish(prediction)
            t3 = time.perf_counter()
            _record(timings, result, t3 - t2)
            index += 1
    finally:
        drain.close()
        publisher.close()
        processor.close()
        src.close()
    if not images:
        raise FerError(f"{source_arg}: no frame could be read")
    return timings, images, stamps, info


def _record(timings: TimingLog, result: FrameResult, publish_s: float) -> None:
    t = result.times
    timings.add("landmarks", t.landmarks)
    timings.add("features", t.features)
    timings.add("inference/frame", t.inference)
    timings.add("explain/frame", t.explain)
    if t.scored:
        timings.add("inference", t.inference)
        timings.add("explain/face", t.explain / t.scored)
    timings.add("publish", publish_s)


def _threads(config: RuntimeConfig) -> str:
    return ("pipelined" if config.pipelined else "serial") + "; " + describe_plan(plan_cpus(config.pin_threads))


def _bench_publish_options(config: RuntimeConfig):  # noqa: ANN202
    from dataclasses import replace

    # a loopback port of its own, read by the bench's own draining subscriber: no CURVE keys
    # (the bench measures publishing, which CURVE leaves on ZeroMQ's I/O thread)
    return replace(config.publish, endpoint=_BENCH_ENDPOINT, curve_secret_key=None, curve_allowed_clients=None)


def _recognizer_pass(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, *, max_frames: int | None, duration_s: float | None, keep: list[np.ndarray] | None = None, keep_ts: list[int] | None = None):  # noqa: ANN202
    """One end-to-end run; returns ``(summary, recognizer)``."""
    src = open_source(source_arg, config.capture)
    try:
        processor = FrameProcessor.create(config, bundle)
    except BaseException:
        src.close()
        raise
    try:
        processor.warm_up()
        publisher = Publisher.from_options(_bench_publish_options(config))
    except BaseException:
        processor.close()
        src.close()
        raise
    drain = _Drain(publisher.endpoint)
    try:
        deadline: list[float | None] = [None]

        def on_frame(frame: Frame, result: FrameResult) -> None:
            if keep is not None and len(keep) < LIVE_KEEP_FRAMES:
                keep.append(frame.image.copy())
                keep_ts.append(result.timestamp_ms)  # type: ignore[union-attr]
            if deadline[0] is None and duration_s is not None:
                deadline[0] = time.monotonic() + duration_s
            if (max_frames is not None and rec.frames >= max_frames) or (deadline[0] is not None and time.monotonic() >= deadline[0]):
                rec.stop()

        rec = Recognizer(src, processor, [PublisherSink(publisher)], config, on_frame=on_frame)
        summary = rec.run()
    finally:
        drain.close()
        publisher.close()
    return summary, rec


def run_bench(
    source_arg: str,
    config: RuntimeConfig,
    *,
    max_frames: int | None = None,
    repeat: int = 1,
    duration_s: float = 20.0,
) -> BenchReport:
    """Benchmark the pipeline on ``source_arg`` (see the module docs).

    Raises:
        FerError: the bundle or the source cannot be opened.
    """
    bundle = load_bundle(config.model)
    config = config_for_bundle(config, bundle)  # the bare loop computes what the pipeline's landmarker does
    load_before = os.getloadavg()
    if parse_source(source_arg).is_live:  # opened once only: a stream server may take one client
        return _bench_live(source_arg, config, bundle, duration_s, load_before)

    timings, images, stamps, info = _staged_pass(source_arg, config, bundle, max_frames)
    n = len(images)
    pipeline_fps: list[float] = []
    bare_fps: list[float] = []
    lat = TimingLog()
    summary = None
    for _ in range(max(1, repeat)):
        bare_fps.append(_bare_pass(images, stamps, config) if n > 1 else 0.0)
        summary, rec = _recognizer_pass(source_arg, config, bundle, max_frames=max_frames, duration_s=None)
        pipeline_fps.append(summary.fps)
        for name_ in ("latency", "frame_latency"):
            for v in rec.timings.samples(name_):
                lat.add(name_, v)
    load_after = os.getloadavg()
    stages = {k: timings.summary(k) for k in ("decode", "landmarks", "features", "inference", "inference/frame", "explain/face", "explain/frame", "publish")}
    lm = stages["landmarks"].mean_ms
    after = stages["features"].mean_ms + stages["inference/frame"].mean_ms + stages["explain/frame"].mean_ms + stages["publish"].mean_ms
    notes = ["for a file, capture->publish latency includes the wait in the decode-ahead queue (every frame is kept)"]
    if n < 2:
        notes.append("a single frame: no throughput comparison")
    return BenchReport(
        source=info["name"],
        live=False,
        frames=n,
        width=info["width"],
        height=info["height"],
        source_fps=info["fps"],
        loadavg_before=load_before,
        loadavg_after=load_after,
        stages=stages,
        landmarks_ms_per_frame=lm,
        after_landmarks_ms_per_frame=after,
        pipeline_fps=pipeline_fps,
        bare_fps=bare_fps,
        latency=lat.summary("latency"),
        frame_latency=lat.summary("frame_latency"),
        dropped=summary.dropped if summary else 0,
        predictions=summary.predictions if summary else 0,
        warm_up_s=info["warm_up_s"],
        provider=info["provider"],
        delegate=info["delegate"],
        threads=_threads(config),
        attributions_ms_per_frame=stages["explain/frame"].mean_ms,
        notes=notes,
    )


def _bench_live(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, duration_s: float, load_before: tuple[float, float, float]) -> BenchReport:
    keep: list[np.ndarray] = []
    keep_ts: list[int] = []
    summary, rec = _recognizer_pass(source_arg, config, bundle, max_frames=None, duration_s=duration_s, keep=keep, keep_ts=keep_ts)
    bare = [_bare_pass(keep, keep_ts, config)] if len(keep) > 1 else []
    load_after = os.getloadavg()
    t = rec.timings
    stages = {k: t.summary(k) for k in ("landmarks", "features", "inference", "explain/face", "publish")}
    stages["decode"] = Summary.of(())
    per_frame_inf = sum(t.samples("inference")) / max(1, summary.frames) * 1000.0
    per_frame_explain = sum(t.samples("explain")) / max(1, summary.frames) * 1000.0
    after = stages["features"].mean_ms + per_frame_inf + per_frame_explain + stages["publish"].mean_ms
    h, w = keep[0].shape[:2] if keep else (0, 0)
    return BenchReport(
        source=rec.source.name,
        live=True,
        frames=summary.frames,
        width=int(w),
        height=int(h),
        source_fps=rec.source.fps,
        loadavg_before=load_before,
        loadavg_after=load_after,
        stages={k: stages[k] for k in ("decode", "landmarks", "features", "inference", "explain/face", "publish")},
        landmarks_ms_per_frame=stages["landmarks"].mean_ms,
        after_landmarks_ms_per_frame=after,
        pipeline_fps=[summary.fps],
        bare_fps=bare,
        latency=summary.latency,
        frame_latency=summary.frame_latency,
        dropped=summary.dropped,
        predictions=summary.predictions,
        warm_up_s=float("nan"),
        provider=rec.processor.models.provider,
        delegate=rec.processor.detector.delegate,
        threads=_threads(config),
        attributions_ms_per_frame=per_frame_explain,
        notes=["live source: decoding runs in the capture thread (not timed); end-to-end fps is bounded by the source's frame rate",
               f"bare landmarker over the first {len(keep)} frames the recognizer processed"],
    )


# --------------------------------------------------------------------------------------------
# several streams: ``bench SRC --streams N``
# --------------------------------------------------------------------------------------------
@dataclass
class StreamBench:
    """One stream of a multi-stream bench run."""

    id: str
    frames: int
    fps: float
    """From the stream's first frame to its last."""
    latency: Summary
    """Capture -> publish of frames with predictions."""
    frame_latency: Summary
    """Capture -> done, every frame."""
    landmarks: Summary
    dropped: int
    predictions: int
    threads: str
    """Where this stream's threads ran: ``landmarker CPUs / other threads' CPUs``, or ``not pinned``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "frames": self.frames,
            "fps": self.fps,
            "latency": self.latency.to_dict(),
            "frame_latency": self.frame_latency.to_dict(),
            "landmarks": self.landmarks.to_dict(),
            "dropped": self.dropped,
            "predictions": self.predictions,
            "threads": self.threads,
        }


@dataclass
class StreamsBenchReport:
    """Figures of ``bench SRC --streams N``: N copies of one video in one process, one PUB
    socket (see :mod:`realtime_fer.pipeline.multistream`)."""

    source: str
    n_streams: int
    realtime: bool
    """Each copy paced at the file's frame rate (like N cameras) instead of as fast as it goes."""
    width: int
    height: int
    source_fps: float | None
    streams: list[StreamBench]
    wall_s: float
    """From the start of the streams to the end of the last one."""
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    cpus: int
    """CPUs this process may use."""
    published: int
    notes: list[str] = field(default_factory=list)

    @property
    def total_fps(self) -> float:
        """Frames of every stream together per second of wall time."""
        return sum(s.frames for s in self.streams) / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_streams": self.n_streams,
            "realtime": self.realtime,
            "size": [self.width, self.height],
            "source_fps": self.source_fps,
            "streams": [s.to_dict() for s in self.streams],
            "wall_s": self.wall_s,
            "total_fps": self.total_fps,
            "loadavg_before": list(self.loadavg_before),
            "loadavg_after": list(self.loadavg_after),
            "cpus": self.cpus,
            "published": self.published,
            "notes": self.notes,
        }


def run_bench_streams(source_arg: str, config: RuntimeConfig, n_streams: int, *, max_frames: int | None = None) -> StreamsBenchReport:
    """Run ``n_streams`` copies of the video ``source_arg`` at once through the real multi-stream
    path (one recognizer thread per stream, one publisher thread and socket, a draining
    subscriber process) and report each stream's frame rate and capture-to-publish latency.

    ``config.capture.realtime`` paces every copy at the file's frame rate (N live cameras);
    otherwise each copy runs as fast as it can (throughput).

    Raises:
        FerError: ``n_streams`` < 1, a live source (it cannot be opened N times), or the bundle
            or the file cannot be opened.
    """
    from realtime_fer.pipeline.config import StreamConfig
    from realtime_fer.pipeline.multistream import PublisherHub, open_streams

    if n_streams < 1:
        raise FerError("--streams must be at least 1")
    if parse_source(source_arg).is_live:
        raise FerError("--streams runs N copies of a video file; a camera or stream cannot be opened N times")
    bundle = load_bundle(config.model)
    config = config_for_bundle(config, bundle)
    open_source(source_arg, config.capture).close()  # one clear error for a bad file, not N
    load_before = os.getloadavg()
    hub = PublisherHub(Publisher.from_options(_bench_publish_options(config)))
    drain = _Drain(hub.endpoint)
    try:
        streams = [StreamConfig(id=f"s{i}", source=source_arg) for i in range(n_streams)]
        multi = open_streams(streams, config, hub, bundle=bundle)
        if multi.failed:  # the same file for every stream: the first failure says it all
            for rec in multi.recognizers:
                rec.close()
            raise FerError(multi.failed[0].error or "a stream could not be opened")
        if max_frames is not None:
            for rec in multi.recognizers:
                rec.on_frame = _stop_after(rec, max_frames)
        plans = {rec.stream_id: _short_plan(rec.processor.cpus) for rec in multi.recognizers}
        first = multi.recognizers[0].source
        info = (first.name, first.width, first.height, first.fps)
        t0 = time.perf_counter()
        summary = multi.run()
        wall = time.perf_counter() - t0
    finally:
        drain.close()
        hub.close()
    load_after = os.getloadavg()
    rows = []
    for outcome in summary.streams:
        s = outcome.summary
        if s is None:
            continue
        rows.append(StreamBench(outcome.id, s.frames, s.fps, s.latency, s.frame_latency, s.stages.get("landmarks", Summary.of(())), s.dropped, s.predictions, plans.get(outcome.id, "")))
    notes = []
    if not config.capture.realtime:
        notes.append("unpaced files: each copy runs as fast as it can; capture->publish latency includes the wait in the decode-ahead queue")
    else:
        notes.append("each copy paced at the file's frame rate (like a camera); a file drops no frame, so a stream that cannot keep up builds latency")
    failed = [o for o in summary.streams if o.error]
    if failed:
        notes.append("failed: " + "; ".join(f"{o.id}: {o.error}" for o in failed))
    return StreamsBenchReport(
        source=info[0],
        n_streams=n_streams,
        realtime=config.capture.realtime,
        width=info[1],
        height=info[2],
        source_fps=info[3],
        streams=rows,
        wall_s=wall,
        loadavg_before=load_before,
        loadavg_after=load_after,
        cpus=len(usable_cpus()),
        published=hub.sent,
        notes=notes,
    )


def _stop_after(rec: Recognizer, max_frames: int):  # noqa: ANN202
    def on_frame(_frame: Frame, _result: FrameResult) -> None:
        if rec.frames >= max_frames:
            rec.stop()

    return on_frame


def _short_plan(plan) -> str:  # noqa: ANN001
    if plan is None:
        return "not pinned"
    return ",".join(map(str, sorted(plan.landmarker))) + " / " + ",".join(map(str, sorted(plan.others)))
