"""``realtime-fer evaluate``: score a labelled folder with a model bundle through the real path
(extraction with cache -> normalisation -> windows -> onnxruntime) and compute metrics.

Output schema (stable; extra fields may be added)::

    {"emotions": {"<name>": {"auc", "accuracy", "balanced_accuracy", "f1", "n_pos", "n_neg", ...}},
     "overall": {"accuracy", "detection_rate", "n", ...},
     "model": {...}}

Per-emotion figures are one-vs-rest over scored windows (a still image is one window; a video
gives the windows a live stream decides, in source time: :func:`realtime_fer.data.windows.clip_windows`).
Frames without a detected face lower ``detection_rate`` and are left out of the per-emotion
figures. Partial windows (a face seen for less than a window) are scored only in runs too short
for a full window (``partial="short"``, the default), so a long clip's figures are those of its
full windows; ``partial="all"`` scores every partial window a live stream would publish.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.data.executors import Executor
from realtime_fer.data.extract import extract_dataset, with_blendshapes
from realtime_fer.data.layouts import Discovery
from realtime_fer.data.windows import PartialMode, clip_windows, iter_window_chunks
from realtime_fer.errors import DataError
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.models.bundle import FALLBACK, decide, load_bundle
from realtime_fer.models.metrics import binary_metrics
from realtime_fer.models.runtime import Device
from realtime_fer.explain.baselines import bundle_neutral_face
from realtime_fer.features.adaptation import AdaptationOptions, PersonAdaptation
from realtime_fer.models.scorer import BundleScorer
from realtime_fer.models.smoothing import SmoothingOptions, TrackSmoother, smooth_sequence
from realtime_fer.training.video_protocol import video_protocol

log = logging.getLogger(__name__)


def evaluate(
    data_dir: str | Path | Discovery,
    bundle: str | Path | None = None,
    *,
    cache_dir: str | Path = ".fer_cache",
    landmarker: LandmarkerOptions | None = None,
    device: Device = "auto",
    workers: int | None = None,
    progress: bool = True,
    max_video_frames: int | None = None,
    smoothing: SmoothingOptions | None = None,
    adaptation: AdaptationOptions | None = None,
    executor: Executor | None = None,
    partial: PartialMode = "short",
    min_seconds: float = 0.4,
) -> dict[str, Any]:
    """Evaluate ``bundle`` (default: the shipped model) on ``data_dir``; returns the metrics dict.

    The landmarks are extracted by :func:`~realtime_fer.data.extract.extract_dataset` on
    ``executor`` (default: that of an enclosing :func:`~realtime_fer.data.executors.use_executor`
    block, e.g. a Dask cluster, else ``workers`` local processes); the metrics do not depend on it.

    ``smoothing`` (default: the live recognizer's, :class:`SmoothingOptions`) is applied to each
    clip's windows in time order before the video protocol's decisions, as the stream does;
    ``adaptation`` (default off) corrects each clip's windows by the clip's resting face, window
    by window as the stream does (:mod:`realtime_fer.features.adaptation`).

    Clip windows are in the bundle's seconds (:attr:`ModelBundle.window
    <realtime_fer.models.bundle.ModelBundle.window>`); ``partial`` chooses which partial windows
    (``min_seconds``, the live ``window.min_seconds``) are scored (:data:`PartialMode`)."""
    model = load_bundle(bundle)
    scorer = BundleScorer(model, device=device)
    blend = bool(model.blendshapes)
    res = extract_dataset(data_dir, cache_dir, with_blendshapes(landmarker, blend), workers=workers, progress=progress, max_video_frames=max_video_frames, executor=executor)
    if not res.samples:
        raise DataError(f"no readable sample in {data_dir}")
    window = dataclasses.replace(model.window, min_seconds=min_seconds)
    smoothing = smoothing or SmoothingOptions()
    probs: dict[str, list[np.ndarray]] = {e: [] for e in model.emotions}
    decided: list[np.ndarray] = []
    owners = []
    stills = [i for i, s in enumerate(res.samples) if s.ref.kind == "image"]
    for chunk in iter_window_chunks([res.samples[i] for i in stills], window, jitter=False, blendshapes=blend):
        wins, own = chunk[0], chunk[1]
        p = scorer.predict(wins, chunk[2] if blend else None)
        for e in model.emotions:
            probs[e].append(p[e])
        decided.append(decide(p, model.thresholds))
        owners.append(np.asarray(stills, np.int64)[own])
    clip_rows: dict[int, np.ndarray] = {}
    n_rows = sum(len(o) for o in owners)
    n_partial = 0
    for i, s in enumerate(res.samples):
        if s.ref.kind == "image":
            continue
        clip = clip_windows(s, window, blendshapes=blend, partial=partial)
        wins, bwins = clip.windows, clip.blendshapes
        n_partial += int(clip.partial.sum())
        if len(wins) == 0:
            clip_rows[i] = np.zeros(0, np.int64)
            continue
        if adaptation is not None and adaptation.enabled:
            p, tops = adapted_clip(scorer, model, wins, clip.times, clip.run, smoothing, adaptation, bwins, clip.partial)
        else:
            parts = [scorer.predict(wins[k : k + 2048], None if bwins is None else bwins[k : k + 2048]) for k in range(0, len(wins), 2048)]
            p = {e: np.concatenate([q[e] for q in parts]) for e in model.emotions}
            tops = decide(smooth_clip(p, clip.times, clip.run, smoothing, clip.partial), model.thresholds)
        for e in model.emotions:
            probs[e].append(p[e])
        decided.append(tops)
        owners.append(np.full(len(wins), i, np.int64))
        clip_rows[i] = np.arange(n_rows, n_rows + len(wins))
        n_rows += len(wins)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    p_all = {e: (np.concatenate(v) if v else np.zeros(0, np.float32)) for e, v in probs.items()}
    published = np.concatenate(decided) if decided else np.zeros(0, str)
    truth = np.array([res.samples[i].ref.label for i in owner], dtype=object).astype(str) if len(owner) else np.zeros(0, str)

    emotions = {}
    for e, entry in model.emotions.items():
        m = binary_metrics(p_all[e], truth == e, entry.threshold)
        m["threshold"] = entry.threshold
        emotions[e] = m
    top = decide(p_all, model.thresholds) if len(owner) else np.zeros(0, str)  # per window, unsmoothed
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
        "n_partial_windows": n_partial,
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
            "window_seconds": {"seconds": window.span_s, "hop_seconds": window.hop_s, "min_seconds": window.min_seconds, "partial": partial},
            "provider": scorer.provider,
        },
        "data": {"path": str(res.data_dir), "layout": res.layout, "failed": [{"path": p, "reason": r} for p, r in res.failed], "skipped": [{"path": p, "reason": r} for p, r in res.skipped]},
        "videos": videos,
        "video": video_protocol([s.ref for s in res.samples], clip_rows, published, list(model.emotions), smoothing),
    }


def smooth_clip(probabilities: dict[str, np.ndarray], times: np.ndarray, runs: np.ndarray, options: SmoothingOptions,
                partial: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The live stream's smoothing over one clip's windows (``times``: each window's source time,
    seconds; ``runs``: its run of consecutive detections; ``partial``: which windows are
    partial): a new run (the face was lost) restarts it, as a lost track does in the stream,
    and so does a run's first full window after partial ones (``restart_at_full``)."""
    out = {e: np.empty(len(p), np.float32) for e, p in probabilities.items()}
    breaks = np.flatnonzero(np.diff(runs) != 0) + 1
    for seg in np.split(np.arange(len(times)), breaks):
        if len(seg) == 0:
            continue
        sm = smooth_sequence({e: p[seg] for e, p in probabilities.items()}, times[seg], options, None if partial is None else partial[seg])
        for e in out:
            out[e][seg] = sm[e]
    return out


def adapted_clip(
    scorer: BundleScorer,
    model: Any,
    wins: np.ndarray,
    times: np.ndarray,
    runs: np.ndarray,
    smoothing: SmoothingOptions,
    adaptation: AdaptationOptions,
    blendshapes: np.ndarray | None = None,
    partial: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Score one clip window by window as the live stream does with person adaptation: each
    window is corrected by the resting face learnt from the windows before it, smoothed and
    decided, then (unadapted, full windows only) fed to the estimate with its decision. A new
    run restarts both (a lost track). Returns the raw probabilities of the corrected windows and
    the tops."""
    union = model.landmark_union
    subsets = {e: np.asarray(entry.landmarks, np.int64) for e, entry in model.emotions.items()}
    adapt = PersonAdaptation(union, subsets, bundle_neutral_face(model), adaptation)
    smoother = TrackSmoother(smoothing)
    probs = {e: np.empty(len(wins), np.float32) for e in model.emotions}
    tops = np.empty(len(wins), dtype=object)
    for k in range(len(wins)):
        track = int(runs[k])
        window = wins[k][:, union, :]  # the union window, as the live selector keeps it
        corrected = window[None].copy()
        adapt.correct_union(corrected, [track])
        p = scorer.predict_union(corrected, None if blendshapes is None else blendshapes[k : k + 1])
        for e in probs:
            probs[e][k] = p[e][0]
        sm = smoother.update(track, {e: float(p[e][0]) for e in probs}, float(times[k]), partial is not None and bool(partial[k]))
        tops[k] = str(decide({e: np.array([v]) for e, v in sm.items()}, model.thresholds)[0])
        if partial is None or not partial[k]:
            adapt.observe(track, window, float(times[k]), tops[k] == FALLBACK)
    return probs, tops.astype(str)
