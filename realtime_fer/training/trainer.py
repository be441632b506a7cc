"""``realtime-fer train``: datasets -> landmarks (cached) -> windows -> per-emotion models -> bundle."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from realtime_fer.config_io import to_dict
from realtime_fer.data.extract import ExtractedSample, default_options, extract_dataset, with_blendshapes
from realtime_fer.data.motion import MotionBank, MotionOptions
from realtime_fer.errors import ConfigError, DataError
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES, NUM_MESH_LANDMARKS, LandmarkerOptions
from realtime_fer.landmarks.model_file import PINNED_SHA256
from realtime_fer.landmarks.normalize import ANCHORS
from realtime_fer.models.bundle import FALLBACK, decide, write_bundle
from realtime_fer.models.ignored_inputs import blendshape_indices
from realtime_fer.models.metrics import binary_metrics, roc_auc
from realtime_fer.models.network import Network
from realtime_fer.models.speech_subspace import SpeechSubspace
from realtime_fer.models.symmetric import mirror_closed, mirror_paired
from realtime_fer.training.config import TrainConfig
from realtime_fer.training.domain_offset import apply_offsets, domain_offsets
from realtime_fer.training.features import PooledSet, pooled_set
from realtime_fer.training.pseudo_labels import UnlabelledWindows, pseudo_label, unlabelled_clips
from realtime_fer.training.fitting import calibrate, fit_blendshape_fusion, fit_models, keeps_half, scores
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


def extraction_options(config: TrainConfig) -> LandmarkerOptions:
    """The landmarker options for the config's data: ``landmarker`` (default: the dataset
    extractor's), computing blendshapes when the models read them."""
    return with_blendshapes(config.landmarker, config.model.blendshapes) or default_options()


def load_sources(config: TrainConfig, progress: bool = True) -> LabelledData:
    """Extract (or read from cache) every source of ``config.data``; samples without any
    detected face are dropped (and counted in the per-source report)."""
    samples: list[ExtractedSample] = []
    groups: list[str] = []
    reports = []
    for src in config.data.sources:
        res = extract_dataset(src.path, config.data.cache_dir, extraction_options(config), workers=config.data.workers or None, progress=progress)
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
                **({"weight": src.weight} if src.weight != 1 else {}),
            }
        )
        log.info("source %s: %d samples, %d with a face", name, len(res.samples), len(kept))
    if not samples:
        raise DataError("no training sample with a detected face in any source")
    return LabelledData(samples, np.array([s.ref.label for s in samples]), np.array(groups), reports)


def _rows_of(owner: np.ndarray, sample_mask: np.ndarray) -> np.ndarray:
    return np.nonzero(sample_mask[owner])[0]


@dataclass
class PreparedData:
    """Everything a fit needs, prepared once: samples, splits, pooled windows and the emotions
    that have enough examples (shared by :func:`train` and pruning)."""

    data: LabelledData
    split: np.ndarray
    """(n_samples,) TRAIN, VALIDATION or CALIBRATION per sample."""
    jittered: PooledSet
    """Training windows (stills with landmark jitter), full mesh."""
    plain: PooledSet
    """Windows without jitter (validation, explanation) and the calibration windows (set in
    motion when ``data.motion.calibrate_with_motion``, still ones kept beside them when
    ``calibrate_with_stills``), full mesh."""
    train_rows: np.ndarray
    cal_rows: np.ndarray
    val_rows: np.ndarray
    codes_train: np.ndarray
    """(len(jittered),) label code of each training-set window."""
    codes_plain: np.ndarray
    emotions: list[str]
    """Emotions with enough examples, in the config's order."""
    skipped: dict[str, str]
    """Emotions left out, with the reason."""
    seconds: float
    """Time to load the sources (cache) and build the windows."""
    subspace: SpeechSubspace | None = None
    """Directions of talking motion the models project off (``model.speech_subspace``)."""
    blendshape_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Training windows (rows of ``jittered``) of the sources with role ``blendshape_model``:
    the blendshape model trains on them beside ``train_rows``, the landmark models do not."""
    unlabelled: UnlabelledWindows | None = None
    """The windows of ``data.pseudo_labels.sources`` (None without self-training)."""
    domain_offset: dict[str, Any] = field(default_factory=dict)
    """``data.domain_offset``: the offsets of the source the shipped neutral faces come from
    (RAF-DB), for the bundle's manifest (empty when off)."""

    @property
    def positives(self) -> dict[str, int]:
        return {e: EMOTIONS.index(e) for e in self.emotions}


@dataclass
class FitResult:
    """Calibrated networks with their validation metrics."""

    nets: dict[str, Network]
    subsets: dict[str, list[int]]
    thresholds: dict[str, float]
    metrics: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    by_source: dict[str, dict[str, Any]]
    fit_seconds: float
    calibration_auc: dict[str, float | None] = field(default_factory=dict)
    """AUC on the calibration split (Platt scaling is monotone, so this is an honest held-out
    AUC; used when the validation split lacks an emotion)."""
    fusion: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per emotion, the log-odds weights of the fused landmark and blendshape models
    (``model.blendshape_model``); empty without."""
    pseudo_labels: dict[str, Any] = field(default_factory=dict)
    """Self-training (``data.pseudo_labels``): clips, their windows and the windows kept per
    emotion; empty without."""


def prepare(config: TrainConfig, *, progress: bool = True, extra_train: Sequence[ExtractedSample] = (), extra_name: str = "extra", extra_weight: int = 1) -> PreparedData:
    """Load the sources, split them by group, build the pooled windows and pick the emotions.

    ``extra_train``: samples added to the training split whole (e.g. the labelled clips of the
    actors a leave-one-actor-out fold trains on), after the sources' split, as the source
    ``extra_name``. They are real video, so the domain offset never moves them; each of their
    training windows counts ``extra_weight`` times in the fit (its row repeated), as a source's
    ``weight`` does for its own."""
    if int(extra_weight) != extra_weight or extra_weight < 1:
        raise ConfigError(f"extra_weight must be a whole number >= 1, got {extra_weight!r}")
    t0 = time.perf_counter()
    data = load_sources(config, progress=progress)
    split = group_split(data.groups, [config.data.validation_fraction, config.data.calibration_fraction], seed=config.data.split_seed)
    role_of_source = {src.name or Path(src.path).name: src.role for src in config.data.sources}
    role = np.array([role_of_source.get(g.split(":", 1)[0], "all") for g in data.groups])
    weight_of_source = {src.name or Path(src.path).name: src.weight for src in config.data.sources}
    weight = np.array([weight_of_source.get(g.split(":", 1)[0], 1) for g in data.groups], np.int64)
    blend_only = role == "blendshape_model"
    # sources that only train (role train; role blendshape_model: the blendshape model alone):
    # calibration and validation never see them
    split = np.where(role != "all", TRAIN, split)
    kept = [s for s in extra_train if s.detected.any()]
    if kept:
        data = LabelledData(
            data.samples + kept,
            np.concatenate([data.labels, [s.ref.label for s in kept]]),
            np.concatenate([data.groups, [f"{extra_name}:{s.ref.group}" for s in kept]]),
            data.sources + [{"name": extra_name, "n_samples": len(kept), "split": "train only", "per_label": {e: sum(s.ref.label == e for s in kept) for e in EMOTIONS if any(s.ref.label == e for s in kept)}}],
        )
        split = np.concatenate([split, np.full(len(kept), TRAIN)])
        blend_only = np.concatenate([blend_only, np.zeros(len(kept), bool)])
        weight = np.concatenate([weight, np.full(len(kept), int(extra_weight))])
    extra = np.arange(len(data.samples)) >= len(data.samples) - len(kept)
    codes_of_sample = np.array([EMOTIONS.index(l) for l in data.labels])
    pooling = tuple(config.model.pooling)
    talking = talking_bank(config, config.data.motion.sources, progress) if config.data.motion.sources else None
    motion_train, motion_cal = motion_banks(config, progress, talking)
    subspace = speech_subspace(config, progress, talking)
    blend = config.model.blendshapes
    jittered = pooled_set(data.samples, config.window, pooling, jitter=True, seed=config.seed, max_windows=config.data.max_windows_per_video, motion=motion_train, blendshapes=blend, mirror=config.data.mirror)
    plain = pooled_set(data.samples, config.window, pooling, jitter=False, seed=config.seed, max_windows=config.data.max_windows_per_video, blendshapes=blend)
    train_rows = _rows_of(jittered.owner, (split == TRAIN) & ~blend_only)
    blend_rows = _rows_of(jittered.owner, (split == TRAIN) & blend_only)
    if (weight > 1).any():  # weighted sources and extra samples: their rows repeated
        train_rows = np.repeat(train_rows, weight[jittered.owner[train_rows]])
        blend_rows = np.repeat(blend_rows, weight[jittered.owner[blend_rows]])
    val_rows = _rows_of(plain.owner, split == VALIDATION)
    codes_train = codes_of_sample[jittered.owner]
    codes_plain = codes_of_sample[plain.owner]
    cal_rows = _rows_of(plain.owner, split == CALIBRATION)  # the calibration photos, still
    if motion_cal is not None:
        # calibration windows set in motion by clips that training never saw: thresholds for
        # talking faces; they are appended to ``plain`` so rows index one set
        cal_samples = np.flatnonzero(split == CALIBRATION)
        moving = pooled_set([data.samples[i] for i in cal_samples], config.window, pooling, jitter=True, seed=config.seed + 1, max_windows=config.data.max_windows_per_video, motion=motion_cal, blendshapes=blend)
        moving_rows = len(plain.features) + np.arange(len(moving.features))
        cal_rows = np.concatenate([cal_rows, moving_rows]) if config.data.motion.calibrate_with_stills else moving_rows
        plain = PooledSet(np.concatenate([plain.features, moving.features]), np.concatenate([plain.owner, cal_samples[moving.owner]]), pooling, plain.n_blendshapes)
        codes_plain = codes_of_sample[plain.owner]

    # the extra samples are video already: not measured, so their source gets no offset
    offsets, blend_offsets = domain_offsets(
        config.data.domain_offset, data.samples, data.groups, data.labels, (split == TRAIN) & ~extra, motion_sources=config.data.motion.sources,
        cache_dir=config.data.cache_dir, workers=config.data.workers or None, options=extraction_options(config), blendshapes=config.model.blendshapes, progress=progress,
    )
    source_of = np.array([g.split(":", 1)[0] for g in data.groups])
    for pooled_windows in (jittered, plain):
        apply_offsets(pooled_windows.features, pooling, source_of[pooled_windows.owner], offsets)
        apply_offsets(pooled_windows.features, pooling, source_of[pooled_windows.owner], blend_offsets, n_blendshapes=pooled_windows.n_blendshapes, blendshapes=True)

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
    unlabelled = None
    if config.data.pseudo_labels.enabled:
        unlabelled = unlabelled_clips(
            config.data.pseudo_labels, config.window, pooling, motion_sources=config.data.motion.sources, cache_dir=config.data.cache_dir,
            workers=config.data.workers or None, options=extraction_options(config), blendshapes=config.model.blendshapes, progress=progress,
        )
    # the explanations' neutral faces (assets/neutral_face.npy and the resting-face statistics)
    # are RAF-DB train's: the bundle records that source's offsets so that they can be moved too
    recorded = next((n for n in ("rafdb", *offsets) if n in offsets), None)
    domain = {} if recorded is None else {
        "source": recorded,
        "landmarks": np.round(offsets[recorded], 6).tolist(),
        "blendshapes": np.round(blend_offsets[recorded], 6).tolist() if recorded in blend_offsets else None,
    }
    return PreparedData(data, split, jittered, plain, train_rows, cal_rows, val_rows, codes_train, codes_plain, emotions, skipped, time.perf_counter() - t0, subspace, blend_rows, unlabelled, domain)


def talking_bank(config: TrainConfig, sources: Sequence[str], progress: bool = False) -> MotionBank:
    """The :class:`MotionBank` of the talking clips below ``sources``, read through the config's
    landmark cache."""
    rate = config.window.rate_hz if config.window.seconds is not None else None  # windows in seconds: resample to their sample rate
    return MotionBank.from_videos(sources, config.data.cache_dir, extraction_options(config), workers=config.data.workers or None, progress=progress, rate=rate)


def speech_subspace(config: TrainConfig, progress: bool = False, motion_bank: MotionBank | None = None) -> SpeechSubspace | None:
    """The talking-motion directions of ``model.speech_subspace`` (None when its ranks are 0),
    from its ``sources`` or else ``data.motion.sources`` (every clip: the directions are a
    property of speech, not of the clips kept for calibration). ``motion_bank``: the bank of
    ``data.motion.sources`` when already read (used when the subspace has no sources of its own).

    Raises:
        DataError: ranks are set but no source of talking clips is.
    """
    opts = config.model.speech_subspace
    if not opts.enabled:
        return None
    sources = opts.sources if opts.sources is not None else config.data.motion.sources
    if not sources:
        raise DataError("model.speech_subspace needs clips of people talking: set its sources or data.motion.sources")
    bank = motion_bank if motion_bank is not None and opts.sources is None else talking_bank(config, sources, progress)
    return SpeechSubspace.from_bank(bank, opts)


def motion_banks(config: TrainConfig, progress: bool = False, bank: MotionBank | None = None) -> tuple[tuple[MotionBank, MotionOptions] | None, tuple[MotionBank, MotionOptions] | None]:
    """The motion for training windows and (``calibrate_with_motion``) for calibration windows,
    from disjoint clips of ``data.motion.sources`` (``bank``: their bank when already read);
    ``(None, None)`` without sources."""
    opts = config.data.motion
    if not opts.sources:
        return None, None
    bank = bank if bank is not None else talking_bank(config, opts.sources, progress)
    if not opts.calibrate_with_motion or bank.n_clips < 2:
        return (bank, opts), None
    train_bank, cal_bank = bank.split(opts.calibration_share, seed=config.seed)
    log.info("motion: %d clips for training windows, %d for calibration windows", train_bank.n_clips, cal_bank.n_clips)
    return (train_bank, opts), (cal_bank, opts)


def default_subsets(config: TrainConfig, emotions: list[str]) -> dict[str, list[int]]:
    """Each emotion's landmarks: ``model.landmark_subsets``, else ``model.landmarks``, else all."""
    all_lms = list(config.model.landmarks) if config.model.landmarks is not None else list(range(NUM_MESH_LANDMARKS))
    return {e: [int(i) for i in config.model.landmark_subsets.get(e, all_lms)] for e in emotions}


def subsets_for(config: TrainConfig, emotions: list[str], fixed: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Each emotion's landmarks: ``fixed[emotion]`` when given (e.g. a pruned bundle's), else
    :func:`default_subsets`'s."""
    subs = default_subsets(config, emotions)
    subs.update({e: [int(i) for i in fixed[e]] for e in emotions if fixed and e in fixed})
    return subs


def _fit_calibrated(
    config: TrainConfig, prep: PreparedData, subsets: dict[str, list[int]], family: str, positives: dict[str, int],
    jittered: PooledSet, codes_train: np.ndarray, train_rows: np.ndarray,
) -> tuple[dict[str, Network], dict[str, float], dict[str, dict[str, float]], dict[str, float], float]:
    """Fit the networks on ``train_rows`` of ``jittered`` (labels ``codes_train``), fuse the
    blendshape model when configured and calibrate on the calibration windows: networks,
    thresholds, fusion weights, calibration AUCs and the fitting seconds."""
    symmetric = config.model.symmetric
    ignored = blendshape_indices(config.model.ignored_blendshapes)
    nets, fit_s = fit_models(
        family, jittered, codes_train, positives, subsets, window_length=config.window.length,
        randomized=config.model.randomized, torch=config.model.torch, rows=train_rows, subspace=prep.subspace,
        shape_components=config.model.shape_components, identity=config.model.identity_subspace,
        identity_code=EMOTIONS.index(config.model.identity_subspace.label), rest=config.model.rest_normalisation,
        symmetric=symmetric, symmetric_parts=config.model.symmetric_parts, ignored_blendshapes=ignored,
    )
    plain, codes_plain = prep.plain, prep.codes_plain
    bm = config.model.blendshape_model
    fusion: dict[str, dict[str, float]] = {}
    if bm.enabled:
        t0 = time.perf_counter()
        nets, fusion = fit_blendshape_fusion(
            nets, jittered, codes_train, positives, subsets, rows=np.concatenate([train_rows, prep.blendshape_rows]), cal_data=plain,
            cal_rows=prep.cal_rows, cal_codes=codes_plain[prep.cal_rows], window_length=config.window.length,
            randomized=config.model.randomized, options=bm, symmetric=symmetric, symmetric_parts=config.model.symmetric_parts,
            identity_code=EMOTIONS.index(config.model.identity_subspace.label),
            half=keeps_half(family, config.model.randomized), ignored_blendshapes=ignored,
        )
        fit_s += time.perf_counter() - t0
    emotions = list(subsets)
    cal_scores = scores(nets, plain, subsets, prep.cal_rows)
    cal_truth = {e: codes_plain[prep.cal_rows] == positives[e] for e in emotions}
    thresholds = calibrate(nets, cal_scores, cal_truth, config.model.threshold_criterion, bootstrap=config.model.threshold_bootstrap, seed=config.model.randomized.seed)
    cal_auc = {e: roc_auc(cal_scores[e], cal_truth[e]) for e in emotions}
    return nets, thresholds, fusion, cal_auc, fit_s


def fit_and_validate(config: TrainConfig, prep: PreparedData, subsets: dict[str, list[int]], family: str | None = None) -> FitResult:
    """Fit every emotion of ``subsets`` on the training split, calibrate on the calibration
    split and measure on the validation split (overall and per source)."""
    family = family or config.model.family
    emotions = list(subsets)
    positives = {e: EMOTIONS.index(e) for e in emotions}
    if config.model.symmetric and config.model.symmetric_parts == "all":
        close = mirror_closed if config.model.symmetric_subsets == "closure" else mirror_paired
        subsets = {e: close(s) for e, s in subsets.items()}
    plain, codes_plain = prep.plain, prep.codes_plain
    jittered, codes_train, train_rows = prep.jittered, prep.codes_train, prep.train_rows
    nets, thresholds, fusion, cal_auc, fit_s = _fit_calibrated(config, prep, subsets, family, positives, jittered, codes_train, train_rows)
    pseudo: dict[str, Any] = {}
    if prep.unlabelled is not None and len(prep.unlabelled.features):
        t0 = time.perf_counter()
        rows, labels, counts = pseudo_label(nets, subsets, thresholds, prep.unlabelled, jittered.columns, config.data.pseudo_labels,
                                            withheld=list(config.model.withheld))
        fit_s += time.perf_counter() - t0
        pseudo = {"clips": len(prep.unlabelled.names), "windows": int(len(prep.unlabelled.features)), "kept": counts}
        if len(rows):
            n = len(jittered.features)
            jittered = PooledSet(np.concatenate([jittered.features, prep.unlabelled.features[rows]]), np.concatenate([jittered.owner, np.full(len(rows), -1)]),
                                 jittered.pooling, jittered.n_blendshapes)
            codes_train = np.concatenate([codes_train, [EMOTIONS.index(str(e)) for e in labels]])
            train_rows = np.concatenate([train_rows, n + np.arange(len(rows))])
            nets, thresholds, fusion, cal_auc, second_s = _fit_calibrated(config, prep, subsets, family, positives, jittered, codes_train, train_rows)
            fit_s += second_s

    val_rows = prep.val_rows
    val_scores = scores(nets, plain, subsets, val_rows)
    val_probs = {e: nets[e].calibrate(val_scores[e]) for e in emotions}
    val_truth = np.array(EMOTIONS)[codes_plain[val_rows]]
    metrics = {e: binary_metrics(val_probs[e], val_truth == e, thresholds[e]) for e in emotions}
    overall = overall_accuracy(val_probs, thresholds, val_truth)
    # the same figures per source, e.g. the RAF-DB validation AUCs alone
    val_source = np.array([g.split(":", 1)[0] for g in prep.data.groups])[plain.owner[val_rows]]
    by_source: dict[str, dict[str, Any]] = {}
    for name in np.unique(val_source):
        m = val_source == name
        by_source[str(name)] = {
            "emotions": {e: binary_metrics(val_probs[e][m], val_truth[m] == e, thresholds[e]) for e in emotions},
            "overall": overall_accuracy({e: val_probs[e][m] for e in emotions}, thresholds, val_truth[m]),
        }
    return FitResult(nets, subsets, thresholds, metrics, overall, by_source, fit_s, cal_auc, fusion, pseudo)


def write_trained_bundle(out: Path, config: TrainConfig, prep: PreparedData, fit: FitResult, family: str, extra_training: dict[str, Any] | None = None) -> Path:
    """Write ``fit``'s networks as a bundle with the training provenance in its manifest."""
    return write_bundle(
        out,
        fit.nets,
        fit.subsets,
        fit.thresholds,
        window={"length": config.window.length, "hop": config.window.hop, **config.window.manifest(), "still_jitter": config.window.still_jitter, "pooling": list(config.model.pooling)},
        metrics={e: {"validation": m, "validation_by_source": {k: v["emotions"][e] for k, v in fit.by_source.items()}} for e, m in fit.metrics.items()},
        training={
            "family": family,
            "sources": prep.data.sources,
            "licence_note": "Trained on third-party research datasets: research use only (see each source's licence).",
            "split": {"validation_fraction": config.data.validation_fraction, "calibration_fraction": config.data.calibration_fraction, "seed": config.data.split_seed, "grouped_by": "subject where known, else image"},
            "windows": {"train": int(len(prep.train_rows)), "calibration": int(len(prep.cal_rows)), "validation": int(len(prep.val_rows))},
            "skipped_emotions": prep.skipped,
            "fit_seconds": round(fit.fit_seconds, 3),
            **({"blendshape_fusion": fit.fusion} if fit.fusion else {}),
            **({"pseudo_labels": fit.pseudo_labels} if fit.pseudo_labels else {}),
            "validation_overall": fit.overall,
            "config": to_dict(config),
            **(extra_training or {}),
        },
        normalisation={"method": "similarity (Procrustes) fit of rigid anchors to the reference face", "anchors": list(ANCHORS), "reference": "realtime_fer/assets/reference_face.npy",
                       **({"domain_offset": prep.domain_offset} if prep.domain_offset else {})},
        landmarker={"model_sha256": PINNED_SHA256, "pad_fraction_stills": extraction_options(config).pad_fraction, "blendshapes": bool(config.model.blendshapes)},
        blendshapes=list(BLENDSHAPE_NAMES) if config.model.blendshapes else None,
        withheld={e: r for e, r in config.model.withheld.items() if e in fit.nets} or None,
    )


def train(config: TrainConfig, *, family: str | None = None, output: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and write a bundle; returns a report (metrics, timings, bundle path)."""
    t_start = time.perf_counter()
    family = family or config.model.family
    prep = prepare(config, progress=progress)
    subsets = default_subsets(config, prep.emotions)
    fit = fit_and_validate(config, prep, subsets, family)
    out = Path(output or config.output)
    write_trained_bundle(out, config, prep, fit, family)
    report = {
        "bundle": str(out),
        "family": family,
        "emotions": {e: {**fit.metrics[e], "threshold": fit.thresholds[e], "n_landmarks": len(subsets[e])} for e in prep.emotions},
        "overall": fit.overall,
        "by_source": fit.by_source,
        "skipped": prep.skipped,
        "timing": {"windows_s": round(prep.seconds, 2), "fit_s": round(fit.fit_seconds, 3), "total_s": round(time.perf_counter() - t_start, 2)},
        "windows": {"train": int(len(prep.train_rows)), "calibration": int(len(prep.cal_rows)), "validation": int(len(prep.val_rows))},
    }
    log.info("trained %d %s models in %.2f s -> %s", len(fit.nets), family, fit.fit_seconds, out)
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
