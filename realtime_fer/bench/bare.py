"""The bare Face Landmarker loop every comparison is made against: a fresh VIDEO-mode landmarker
alone over frames decoded beforehand (no decoding timed)."""

from __future__ import annotations

import time

import numpy as np

from realtime_fer.affinity import pinned, plan_cpus
from realtime_fer.landmarks.detector import FaceLandmarkDetector
from realtime_fer.pipeline.config import RuntimeConfig


def bare_pass(images: list[np.ndarray], timestamps: list[int], config: RuntimeConfig) -> float:
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
