"""``bench CAMERA|URL``: the real recognizer on a live source for a while, then the bare
landmarker over up to :data:`~realtime_fer.bench.harness.LIVE_KEEP_FRAMES` of the frames it saw."""

from __future__ import annotations

import os

import numpy as np

from realtime_fer.bench.bare import bare_pass
from realtime_fer.bench.harness import describe_threads, recognizer_pass
from realtime_fer.bench.report import BenchReport
from realtime_fer.models.bundle import ModelBundle
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.stats import Summary


def bench_live(source_arg: str, config: RuntimeConfig, bundle: ModelBundle, duration_s: float, load_before: tuple[float, float, float]) -> BenchReport:
    """Run the recognizer on the live ``source_arg`` for ``duration_s`` seconds (see the module docs)."""
    keep: list[np.ndarray] = []
    keep_ts: list[int] = []
    summary, rec = recognizer_pass(source_arg, config, bundle, max_frames=None, duration_s=duration_s, keep=keep, keep_ts=keep_ts)
    bare = [bare_pass(keep, keep_ts, config)] if len(keep) > 1 else []
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
        threads=describe_threads(config),
        attributions_ms_per_frame=per_frame_explain,
        notes=["live source: decoding runs in the capture thread (not timed); end-to-end fps is bounded by the source's frame rate",
               f"bare landmarker over the first {len(keep)} frames the recognizer processed"],
    )
