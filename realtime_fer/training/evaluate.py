"""``realtime-fer evaluate``: score a labelled folder with a model bundle through the real path
(extraction with cache -> normalisation -> windows -> onnxruntime) and compute metrics.

Output schema (stable; extra fields may be added)::

    {"emotions": {"<name>": {"auc", "accuracy", "balanced_accuracy", "f1", "n_pos", "n_neg", ...}},
     "overall": {"accuracy", "detection_rate", "n", ...},
     "model": {...}}

Per-emotion figures are one-vs-rest over scored windows (a still image is one window; a video
gives sliding windows). Frames without a detected face lower ``detection_rate`` and are left
out of the per-emotion figures.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.errors import DataError
from realtime_fer.features.windows import WindowOptions
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.models.bundle import FALLBACK, decide, load_bundle
from realtime_fer.models.metrics import binary_metrics
from realtime_fer.models.runtime import Device
from realtime_fer.models.scorer import BundleScorer

log = logging.getLogger(__name__)


def evaluate(
    data_dir: str | Path,
    bundle: str | Path | None = None,
    *,
    cache_dir: str | Path = ".fer_cache",
    landmarker: LandmarkerOptions | None = None,
    device: Device = "auto",
    workers: int | None = None,
    progress: bool = True,
    max_video_frames: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``bundle`` (default: the shipped model) on ``data_dir``; returns the metrics dict."""
    model = load_bundle(bundle)
    scorer = BundleScorer(model, device=device)
    res = extract_dataset(data_dir, cache_dir, landmarker, workers=workers, progress=progress, max_video_frames=max_video_frames)
    if not res.samples:
        raise DataError(f"no readable sample in {data_dir}")
    window = WindowOptions(length=model.window_length, hop=model.hop)
    probs: dict[str, list[np.ndarray]] = {e: [] for e in model.emotions}
    owners = []
    for wins, own in iter_window_chunks(res.samples, window, jitter=False):
        for e, p in scorer.predict(wins).items():
            probs[e].append(p)
        owners.append(own)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    p_all = {e: (np.concatenate(v) if v else np.zeros(0, np.float32)) for e, v in probs.items()}
    truth = np.array([res.samples[i].ref.label for i in owner], dtype=object).astype(str) if len(owner) else np.zeros(0, str)

    emotions = {}
    for e, entry in model.emotions.items():
        m = binary_metrics(p_all[e], truth == e, entry.threshold)
        m["threshold"] = entry.threshold
        emotions[e] = m
    top = decide(p_all, model.thresholds) if len(owner) else np.zeros(0, str)
    keep = np.isin(truth, list(model.emotions) + [FALLBACK])
    frames = sum(s.n_frames for s in res.samples)
    frames_det = sum(int(s.detected.sum()) for s in res.samples)
    overall = {
        "accuracy": float(np.mean(top[keep] == truth[keep])) if keep.any() else None,
        "detection_rate": frames_det / frames if frames else 0.0,
        "n": int(len(owner)),
        "n_accuracy": int(keep.sum()),
        "n_samples": len(res.samples),
        "n_frames": int(frames),
        "n_frames_detected": int(frames_det),
        "n_failed": len(res.failed),
        "labels": dict(Counter(s.ref.label for s in res.samples)),
    }
    videos = {}
    for i, s in enumerate(res.samples):
        if s.ref.kind == "image":
            continue
        rows = owner == i
        if not rows.any():
            videos[str(s.ref.path)] = {"label": s.ref.label, "windows": 0, "detection_rate": s.detection_rate}
            continue
        votes = Counter(top[rows])
        videos[str(s.ref.path)] = {
            "label": s.ref.label,
            "windows": int(rows.sum()),
            "detection_rate": s.detection_rate,
            "top": votes.most_common(1)[0][0],
            "top_share": votes.most_common(1)[0][1] / int(rows.sum()),
            "mean_probability": {e: float(p_all[e][rows].mean()) for e in model.emotions},
        }
    return {
        "emotions": emotions,
        "overall": overall,
        "model": {
            "path": str(model.path),
            "schema_version": model.manifest.get("schema_version"),
            "created": model.manifest.get("created"),
            "family": model.manifest.get("training", {}).get("family"),
            "emotions": list(model.emotions),
            "window": model.manifest.get("window"),
            "provider": scorer.provider,
        },
        "data": {"path": str(data_dir), "layout": res.layout, "failed": [{"path": p, "reason": r} for p, r in res.failed]},
        "videos": videos,
    }
