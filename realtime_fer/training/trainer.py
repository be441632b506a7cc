"""``realtime-fer train``: datasets -> landmarks (cached) -> windows -> per-emotion models -> bundle."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.config_io import to_dict
from realtime_fer.data.extract import ExtractedSample, extract_dataset
from realtime_fer.errors import DataError
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.landmarks.model_file import PINNED_SHA256
from realtime_fer.landmarks.normalize import ANCHORS
from realtime_fer.models.bundle import FALLBACK, decide, write_bundle
from realtime_fer.models.metrics import binary_metrics
from realtime_fer.training.config import TrainConfig
from realtime_fer.training.features import PooledSet, pooled_set
from realtime_fer.training.fitting import calibrate, fit_models, scores
from realtime_fer.training.splits import group_split

log = logging.getLogger(__name__)

TRAIN, VALIDATION, CALIBRATION = 0, 1, 2


@dataclass
class LabelledData:
    """Extracted samples of all sources with their labels and (source-qualified) groups."""

    samples: list[ExtractedSample]
    labels: np.ndarray
    groups: np.ndarray
    sources: list[dict[str, Any]] = field(default_factory=list)


def load_sources(config: TrainConfig, progress: bool = True) -> LabelledData:
    """Extract (or read from cache) every source of ``config.data``; samples without any
    detected face are dropped (and counted in the per-source report)."""
    samples: list[ExtractedSample] = []
    groups: list[str] = []
    reports = []
    for src in config.data.sources:
        res = extract_dataset(src.path, config.data.cache_dir, config.landmarker, workers=config.data.workers or None, progress=progress)
        name = src.name or Path(src.path).name
        kept = [s for s in res.samples if s.detected.any()]
        samples += kept
        groups += [f"{name}:{s.ref.group}" for s in kept]
        counts = {e: 0 for e in EMOTIONS}
        for s in kept:
            counts[s.ref.label] += 1
        reports.append(
            {
                "name": name,
                "path": str(src.path),
                "licence": src.licence,
                "layout": res.layout,
                "n_samples": len(res.samples),
                "n_with_face": len(kept),
                "n_failed": len(res.failed),
                "per_label": {k: v for k, v in counts.items() if v},
            }
        )
        log.info("source %s: %d samples, %d with a face", name, len(res.samples), len(kept))
    if not samples:
        raise DataError("no training sample with a detected face in any source")
    return LabelledData(samples, np.array([s.ref.label for s in samples]), np.array(groups), reports)


def _rows_of(owner: np.ndarray, sample_mask: np.ndarray) -> np.ndarray:
    return np.nonzero(sample_mask[owner])[0]


def train(config: TrainConfig, *, family: str | None = None, output: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and write a bundle; returns a report (metrics, timings, bundle path)."""
    t_start = time.perf_counter()
    family = family or config.model.family
    data = load_sources(config, progress=progress)
    split = group_split(data.groups, [config.data.validation_fraction, config.data.calibration_fraction], seed=config.data.split_seed)
    codes_of_sample = np.array([EMOTIONS.index(l) for l in data.labels])

    t0 = time.perf_counter()
    pooling = tuple(config.model.pooling)
    jittered = pooled_set(data.samples, config.window, pooling, jitter=True, seed=config.seed, max_windows=config.data.max_windows_per_video)
    plain = pooled_set(data.samples, config.window, pooling, jitter=False, seed=config.seed, max_windows=config.data.max_windows_per_video)
    t_windows = time.perf_counter() - t0
    train_rows = _rows_of(jittered.owner, split == TRAIN)
    cal_rows = _rows_of(plain.owner, split == CALIBRATION)
    val_rows = _rows_of(plain.owner, split == VALIDATION)
    codes_train = codes_of_sample[jittered.owner]
    codes_plain = codes_of_sample[plain.owner]

    emotions, skipped = [], {}
    for e in config.model.emotions:
        code = EMOTIONS.index(e)
        n_tr = int(np.sum(codes_train[train_rows] == code))
        n_cal = int(np.sum(codes_plain[cal_rows] == code))
        if n_tr < config.model.min_positives or n_cal < 1:
            skipped[e] = f"too few examples (train {n_tr}, calibration {n_cal}; need >= {config.model.min_positives} and >= 1)"
            log.warning("not training %s: %s", e, skipped[e])
        else:
            emotions.append(e)
    if not emotions:
        raise DataError("no emotion has enough training examples: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    all_lms = list(config.model.landmarks) if config.model.landmarks is not None else list(range(NUM_MESH_LANDMARKS))
    subsets = {e: list(config.model.landmark_subsets.get(e, all_lms)) for e in emotions}
    positives = {e: EMOTIONS.index(e) for e in emotions}
    nets, fit_s = fit_models(
        family, jittered, codes_train, positives, subsets, window_length=config.window.length,
        randomized=config.model.randomized, torch=config.model.torch, rows=train_rows,
    )
    cal_scores = scores(nets, plain, subsets, cal_rows)
    thresholds = calibrate(nets, cal_scores, {e: codes_plain[cal_rows] == positives[e] for e in emotions}, config.model.threshold_criterion)

    val_scores = scores(nets, plain, subsets, val_rows)
    val_probs = {e: nets[e].calibrate(val_scores[e]) for e in emotions}
    val_truth = np.array(EMOTIONS)[codes_plain[val_rows]]
    metrics = {e: binary_metrics(val_probs[e], val_truth == e, thresholds[e]) for e in emotions}
    overall = overall_accuracy(val_probs, thresholds, val_truth)
    # the same figures per source, e.g. the RAF-DB validation AUCs alone
    val_source = np.array([g.split(":", 1)[0] for g in data.groups])[plain.owner[val_rows]]
    by_source: dict[str, dict[str, Any]] = {}
    for name in np.unique(val_source):
        m = val_source == name
        by_source[str(name)] = {
            "emotions": {e: binary_metrics(val_probs[e][m], val_truth[m] == e, thresholds[e]) for e in emotions},
            "overall": overall_accuracy({e: val_probs[e][m] for e in emotions}, thresholds, val_truth[m]),
        }

    out = Path(output or config.output)
    write_bundle(
        out,
        nets,
        subsets,
        thresholds,
        window={"length": config.window.length, "hop": config.window.hop, "still_jitter": config.window.still_jitter, "pooling": list(pooling)},
        metrics={e: {"validation": m, "validation_by_source": {k: v["emotions"][e] for k, v in by_source.items()}} for e, m in metrics.items()},
        training={
            "family": family,
            "sources": data.sources,
            "licence_note": "Trained on third-party research datasets: research use only (see each source's licence).",
            "split": {"validation_fraction": config.data.validation_fraction, "calibration_fraction": config.data.calibration_fraction, "seed": config.data.split_seed, "grouped_by": "subject where known, else image"},
            "windows": {"train": int(len(train_rows)), "calibration": int(len(cal_rows)), "validation": int(len(val_rows))},
            "skipped_emotions": skipped,
            "fit_seconds": round(fit_s, 3),
            "validation_overall": overall,
            "config": to_dict(config),
        },
        normalisation={"method": "similarity (Procrustes) fit of rigid anchors to the reference face", "anchors": list(ANCHORS), "reference": "realtime_fer/assets/reference_face.npy"},
        landmarker={"model_sha256": PINNED_SHA256, "pad_fraction_stills": (config.landmarker.pad_fraction if config.landmarker else 0.25)},
    )
    report = {
        "bundle": str(out),
        "family": family,
        "emotions": {e: {**metrics[e], "threshold": thresholds[e], "n_landmarks": len(subsets[e])} for e in emotions},
        "overall": overall,
        "by_source": by_source,
        "skipped": skipped,
        "timing": {"windows_s": round(t_windows, 2), "fit_s": round(fit_s, 3), "total_s": round(time.perf_counter() - t_start, 2)},
        "windows": {"train": int(len(train_rows)), "calibration": int(len(cal_rows)), "validation": int(len(val_rows))},
    }
    log.info("trained %d %s models in %.2f s -> %s", len(nets), family, fit_s, out)
    return report


def overall_accuracy(probs: dict[str, np.ndarray], thresholds: dict[str, float], truth: np.ndarray) -> dict[str, Any]:
    """Multi-class accuracy of the decision rule (argmax over emotions above threshold, else
    neutral) on windows whose true label is one of the modelled emotions or neutral."""
    names = list(probs)
    if not names or len(truth) == 0:
        return {"accuracy": None, "n": 0}
    pick = decide(probs, thresholds)
    keep = np.isin(truth, names + [FALLBACK])
    n = int(keep.sum())
    return {"accuracy": float(np.mean(pick[keep] == truth[keep])) if n else None, "n": n}
