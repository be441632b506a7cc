"""What every bench shares: a draining subscriber process, the bench's own publishing socket,
one end-to-end pass of the real recognizer, and where the threads ran."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from realtime_fer.affinity import describe_plan, plan_cpus, usable_cpus
from realtime_fer.capture.frame import Frame
from realtime_fer.capture.sources import open_source
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.processor import FrameProcessor, FrameResult
from realtime_fer.pipeline.recognizer import Recognizer, RunSummary
from realtime_fer.pipeline.sinks import PublisherSink
from realtime_fer.publish.publisher import Publisher, PublisherOptions

#: A live bench keeps this many of the frames it processed for its bare landmarker pass.
LIVE_KEEP_FRAMES = 300
_BENCH_ENDPOINT = "tcp://127.0.0.1:0"

_DRAIN_CODE = """
import sys, zmq
sock = zmq.Context.instance().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"fer.")
sock.connect(sys.argv[1])
while True:
    sock.recv_multipart()
"""


class Drain:
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


def describe_threads(config: RuntimeConfig) -> str:
    """Pipelined or serial, and the CPU plan of the threads (or that they are not pinned)."""
    return ("pipelined" if config.pipelined else "serial") + "; " + describe_plan(plan_cpus(config.pin_threads))


def bench_publish_options(config: RuntimeConfig) -> PublisherOptions:
    """``config``'s publishing options on a loopback port of the bench's own."""
    # a loopback port of its own, read by the bench's own draining subscriber: no CURVE keys
    # (the bench measures publishing, which CURVE leaves on ZeroMQ's I/O thread)
    return replace(config.publish, endpoint=_BENCH_ENDPOINT, curve_secret_key=None, curve_allowed_clients=None)


def recognizer_pass(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, *, max_frames: int | None, duration_s: float | None, keep: list[np.ndarray] | None = None, keep_ts: list[int] | None = None) -> tuple[RunSummary, Recognizer]:
    """One end-to-end run of the real recognizer publishing to a draining subscriber; stops after
    ``max_frames`` frames or ``duration_s`` seconds from the first frame; copies up to
    :data:`LIVE_KEEP_FRAMES` frames (and their timestamps) into ``keep`` / ``keep_ts``.
    Returns ``(summary, recognizer)``."""
    src = open_source(source_arg, config.capture)
    try:
        processor = FrameProcessor.create(config, bundle)
    except BaseException:
        src.close()
        raise
    try:
        processor.warm_up()
        publisher = Publisher.from_options(bench_publish_options(config))
    except BaseException:
        processor.close()
        src.close()
        raise
    drain = Drain(publisher.endpoint)
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
