"""The figures of one ``realtime-fer bench SRC`` run (file or live source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime_fer.pipeline.stats import Summary


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
