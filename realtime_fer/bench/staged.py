"""The staged pass of ``bench FILE``: one thread reads the file and runs each stage in turn,
timing every frame's decode, landmarks, features, inference, attributions and publishing; the
decoded frames are kept for the bare pass."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from realtime_fer.affinity import pinned, plan_cpus
from realtime_fer.bench.harness import Drain, bench_publish_options
from realtime_fer.capture.frame import Frame
from realtime_fer.capture.sources import open_source
from realtime_fer.errors import FerError
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.processor import FrameProcessor, FrameResult
from realtime_fer.pipeline.stats import TimingLog
from realtime_fer.publish.publisher import Publisher
from realtime_fer.publish.schema import Status


def staged_pass(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, max_frames: int | None) -> tuple[TimingLog, list[np.ndarray], list[int], dict[str, Any]]:
    plan = plan_cpus(config.pin_threads)
    with pinned(plan.landmarker if plan else None):  # every stage on the landmarker's CPU, one at a time
        return _staged_loop(source_arg, config, bundle, max_frames)


def _staged_loop(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, max_frames: int | None) -> tuple[TimingLog, list[np.ndarray], list[int], dict[str, Any]]:
    timings = TimingLog()
    src = open_source(source_arg, config.capture)
    info = {"name": src.name, "width": src.width, "height": src.height, "fps": src.fps, "kind": src.kind}
    processor = FrameProcessor.create(config, bundle)
    publisher = Publisher.from_options(bench_publish_options(config))
    drain = Drain(publisher.endpoint)
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
