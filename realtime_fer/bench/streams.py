"""``bench VIDEO --streams N``: N copies of one video at once through the multi-stream path of
``run`` (one recognizer thread per stream, one publisher thread and socket, a draining
subscriber process); frame rate and capture-to-publish latency per stream.

With ``--realtime`` every copy is an emulated live camera
(:attr:`~realtime_fer.capture.CaptureOptions.emulate_live`): paced at the file's rate, the newest
frame wins, frames stamped when the camera would have taken them. A host that cannot keep up
then processes fewer frames of each stream, never a backlog, and the report says per stream how
many frames it delivered and dropped, how evenly the processed frames are spread (the gaps
between their capture indices), the latency in ms and in the stream's own delivered frame
periods, and the time to its first decision.

Each stream is paced (:mod:`realtime_fer.pipeline.pacing`, unless ``pacing.enabled`` is off):
when the host is slower than the cameras, a stream takes its next frame no sooner than its
recent median busy time over ``pacing.max_duty``, and a fresh one.

Fairness between streams: each stream has its own capture queue and landmarker, so no stream
waits on another's frames; the landmarkers are spread round-robin over the CPUs
(:func:`~realtime_fer.affinity.plan_streams`) and the streams sharing a CPU share it through the
kernel's fair scheduler. With N a multiple of the CPU count each stream gets an equal share; the
report's ``fairness`` (slowest stream's fps over the fastest's) measures how equal it was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from realtime_fer.affinity import usable_cpus
from realtime_fer.bench.harness import Drain, bench_publish_options
from realtime_fer.capture.frame import Frame
from realtime_fer.capture.sources import open_source, parse_source
from realtime_fer.errors import FerError
from realtime_fer.models.bundle import load_bundle
from realtime_fer.pipeline.config import RuntimeConfig, config_for_bundle
from realtime_fer.pipeline.processor import FrameResult
from realtime_fer.pipeline.recognizer import Recognizer
from realtime_fer.pipeline.stats import Summary
from realtime_fer.publish.publisher import Publisher


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
    first_decision_s: float | None = None
    """From the capture of the stream's first frame to its first published prediction."""
    gaps: list[int] = field(default_factory=list)
    """Between consecutive processed frames, how many capture indices apart they are (1: none
    dropped between them)."""

    @property
    def frame_period_ms(self) -> float:
        """The period of the frames this stream delivered (1000 / :attr:`fps`)."""
        return 1000.0 / self.fps if self.fps > 0 else float("nan")

    @property
    def latency_p95_periods(self) -> float:
        """Latency p95 in delivered frame periods (the target: under 2)."""
        return self.latency.p95_ms / self.frame_period_ms if self.latency.n and self.fps > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        gaps = np.asarray(self.gaps, float)
        return {
            "id": self.id,
            "frames": self.frames,
            "fps": self.fps,
            "latency": self.latency.to_dict(),
            "latency_p95_periods": self.latency_p95_periods,
            "frame_latency": self.frame_latency.to_dict(),
            "landmarks": self.landmarks.to_dict(),
            "dropped": self.dropped,
            "predictions": self.predictions,
            "first_decision_s": self.first_decision_s,
            "gap": {"mean": float(gaps.mean()) if gaps.size else None, "max": int(gaps.max()) if gaps.size else None,
                    "p95": float(np.percentile(gaps, 95)) if gaps.size else None},
            "threads": self.threads,
        }


@dataclass
class StreamsBenchReport:
    """Figures of ``bench SRC --streams N``: N copies of one video in one process, one PUB
    socket (see :mod:`realtime_fer.pipeline.multistream`)."""

    source: str
    n_streams: int
    realtime: bool
    """Each copy an emulated live camera (paced at the file's rate, the newest frame wins)
    instead of a file read as fast as it goes."""
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
    provider: str = ""
    """The onnxruntime provider the emotion models ran on (the first stream's)."""
    delegate: str = ""
    """The MediaPipe delegate the landmarkers ran on (``gpu`` only if every stream's did)."""

    @property
    def total_fps(self) -> float:
        """Frames of every stream together per second of wall time."""
        return sum(s.frames for s in self.streams) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def fairness(self) -> float:
        """The slowest stream's fps over the fastest's (1: every stream got the same rate)."""
        rates = [s.fps for s in self.streams]
        return min(rates) / max(rates) if rates and max(rates) > 0 else float("nan")

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
            "fairness": self.fairness,
            "loadavg_before": list(self.loadavg_before),
            "loadavg_after": list(self.loadavg_after),
            "cpus": self.cpus,
            "published": self.published,
            "notes": self.notes,
            "provider": self.provider,
            "delegate": self.delegate,
        }


def run_bench_streams(source_arg: str, config: RuntimeConfig, n_streams: int, *, max_frames: int | None = None) -> StreamsBenchReport:
    """Run ``n_streams`` copies of the video ``source_arg`` at once through the real multi-stream
    path (one recognizer thread per stream, one publisher thread and socket, a draining
    subscriber process) and report each stream's frame rate and capture-to-publish latency.

    ``config.capture.realtime`` makes every copy an emulated live camera (see the module docs);
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
    if config.capture.realtime:  # N live cameras: the newest frame wins
        config = replace(config, capture=replace(config.capture, emulate_live=True))
    open_source(source_arg, config.capture).close()  # one clear error for a bad file, not N
    load_before = os.getloadavg()
    hub = PublisherHub(Publisher.from_options(bench_publish_options(config)))
    drain = Drain(hub.endpoint)
    try:
        streams = [StreamConfig(id=f"s{i}", source=source_arg) for i in range(n_streams)]
        multi = open_streams(streams, config, hub, bundle=bundle)
        if multi.failed:  # the same file for every stream: the first failure says it all
            for rec in multi.recognizers:
                rec.close()
            raise FerError(multi.failed[0].error or "a stream could not be opened")
        indices: dict[str, list[int]] = {}
        for rec in multi.recognizers:
            indices[rec.stream_id] = []
            rec.on_frame = _watch(rec, indices[rec.stream_id], max_frames)
        plans = {rec.stream_id: short_plan(rec.processor.cpus) for rec in multi.recognizers}
        first = multi.recognizers[0].source
        provider = multi.recognizers[0].processor.models.provider
        delegates = {rec.processor.detector.delegate for rec in multi.recognizers}
        delegate = delegates.pop() if len(delegates) == 1 else "mixed: " + ", ".join(sorted(delegates))
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
        seen = indices.get(outcome.id, [])
        rows.append(StreamBench(
            outcome.id, s.frames, s.fps, s.latency, s.frame_latency, s.stages.get("landmarks", Summary.of(())), s.dropped, s.predictions,
            plans.get(outcome.id, ""), first_decision_s=s.first_decision_s, gaps=[b - a for a, b in zip(seen, seen[1:])],
        ))
    notes = []
    if not config.capture.realtime:
        notes.append("unpaced files: each copy runs as fast as it can; capture->publish latency includes the wait in the decode-ahead queue")
    else:
        notes.append("each copy an emulated live camera: paced at the file's frame rate, the newest frame wins; a stream that cannot keep up drops frames instead of queueing them")
        p = config.pacing
        notes.append(f"pacing: each stream takes its next frame no sooner than median(busy) / {p.max_duty:g} after the last (busy: take -> last message)" if p.enabled
                     else "pacing off: each stream takes its next frame as soon as its landmarker is free")
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
        provider=provider,
        delegate=delegate,
    )


def _watch(rec: Recognizer, indices: list[int], max_frames: int | None) -> Callable[[Frame, FrameResult], None]:
    """An ``on_frame`` that records each processed frame's capture index and stops the stream
    after ``max_frames`` frames."""

    def on_frame(frame: Frame, _result: FrameResult) -> None:
        indices.append(frame.index)
        if max_frames is not None and rec.frames >= max_frames:
            rec.stop()

    return on_frame


def short_plan(plan) -> str:  # noqa: ANN001
    if plan is None:
        return "not pinned"
    return ",".join(map(str, sorted(plan.landmarker))) + " / " + ",".join(map(str, sorted(plan.others)))
