"""``bench FILE``: the staged pass, then bare and end-to-end passes alternated ``repeat`` times;
each pair gives a ratio (end-to-end over bare fps) and the report's ratio is their median (the
two passes of a pair share the machine's load at that moment)."""

from __future__ import annotations

import os

from realtime_fer.bench.bare import bare_pass
from realtime_fer.bench.harness import describe_threads, recognizer_pass
from realtime_fer.bench.report import BenchReport
from realtime_fer.bench.staged import staged_pass
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.stats import TimingLog


def bench_file(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, *, max_frames: int | None, repeat: int, load_before: tuple[float, float, float]) -> BenchReport:
    """Benchmark the pipeline on the file ``source_arg`` (see the module docs); ``config`` is
    already the bundle's (:func:`~realtime_fer.pipeline.config.config_for_bundle`).

    Raises:
        FerError: the source cannot be read.
    """
    timings, images, stamps, info = staged_pass(source_arg, config, bundle, max_frames)
    n = len(images)
    pipeline_fps: list[float] = []
    bare_fps: list[float] = []
    lat = TimingLog()
    summary = None
    for _ in range(max(1, repeat)):
        bare_fps.append(bare_pass(images, stamps, config) if n > 1 else 0.0)
        summary, rec = recognizer_pass(source_arg, config, bundle, max_frames=max_frames, duration_s=None)
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
        threads=describe_threads(config),
        attributions_ms_per_frame=stages["explain/frame"].mean_ms,
        notes=notes,
    )
