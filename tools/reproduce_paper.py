#!/usr/bin/env python3
"""Reproduce the paper's CK+ protocol: subject-independent k-fold, one binary model per emotion.

    python tools/reproduce_paper.py --data ../shared/data/ckplus48 --output report.json

Folds are grouped by the subject id (``S###`` in CK+ file names), so no subject is ever in
both the training and the test part. In each fold, every emotion gets a binary deep
randomized network (hyperparameters from ``--config``, default configs/train_default.yaml)
trained on the training subjects; its Platt calibration comes from a held-out 20% of the
training subjects (redrawn when it would lack an emotion), and a window is called positive
when the calibrated probability is at least 0.5 (the accuracy-optimal decision). Out-of-fold predictions of all folds are pooled
into accuracy, balanced accuracy and ROC AUC per emotion.

The **pruned** variant is chosen without the test fold: inside each fold, the landmarks are
pruned progressively on the fold's training subjects (dataset-level Integrated Gradients of the
fold's own models on the training subjects' windows, baseline/steps/samples from
``--prune-config``; schedule: that config's counts above ``--pruned-landmarks``, then
``--pruned-landmarks``, a size fixed in advance: 128 <= 1/3 of the 468-point mesh), the fold's
models are retrained on the pruned subsets and scored on the test fold.

Writes ``{"emotions": {"<name>": {"full": {"accuracy", "balanced_accuracy", "auc",
"n_landmarks", ...}, "pruned": {...}}}, "protocol": {...}}`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: An emotion needs this many images to be evaluated.
MIN_EXAMPLES = 10


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/ckplus48", help="CK+ folder (ckplus48 ImageFolder or the original layout)")
    ap.add_argument("--output", default="report.json")
    ap.add_argument("--config", default=str(ROOT / "configs/train_default.yaml"), help="model and window hyperparameters")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=".fer_cache")
    ap.add_argument("--family", choices=["randomized", "torch"], help="override the config's model family")
    ap.add_argument("--prune-config", default=str(ROOT / "configs/prune_default.yaml"), help="pruning options (its 'prune' section: baseline, IG steps, samples, schedule)")
    ap.add_argument("--pruned-landmarks", type=int, default=128, help="landmark count of the pruned variant (default 128)")
    ap.add_argument("--prune-schedule", help="comma-separated counts to prune through (default: the prune config's counts above --pruned-landmarks)")
    ap.add_argument("--no-pruned", action="store_true", help="only the full-set variant")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from realtime_fer.errors import FerError

    try:
        report = reproduce(args)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"-> {args.output}")
    return 0


def reproduce(args: argparse.Namespace) -> dict:
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.errors import DataError
    from realtime_fer.labels import EMOTIONS
    from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
    from realtime_fer.models.metrics import binary_metrics
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.trainer import extraction_options, motion_banks
    from realtime_fer.training.features import pooled_set
    from realtime_fer.training.fitting import calibrate, fit_blendshape_fusion, fit_models, keeps_half, scores
    from realtime_fer.training.pruning import ExplainSet, progressive_subsets
    from realtime_fer.training.splits import group_kfold, group_split

    config = load_train_config(args.config)
    prune, counts = _prune_plan(args)
    family = args.family or config.model.family
    res = extract_dataset(args.data, args.cache, extraction_options(config), progress=sys.stderr.isatty())
    samples = [s for s in res.samples if s.detected.any()]
    if not samples:
        raise DataError(f"no face found in {args.data}")
    groups = np.array([s.ref.group for s in samples])
    labels = np.array([s.ref.label for s in samples])
    codes_s = np.array([EMOTIONS.index(l) for l in labels])
    emotions = [e for e in EMOTIONS if (labels == e).sum() >= MIN_EXAMPLES]
    pooling = tuple(config.model.pooling)
    # the recipe's training windows (speech motion when the config has it; calibration and test
    # windows are the still apex frames, as in the paper's protocol)
    motion, _ = motion_banks(config)
    blend = config.model.blendshapes
    train_set = pooled_set(samples, config.window, pooling, jitter=True, seed=args.seed, motion=motion, blendshapes=blend)
    test_set = pooled_set(samples, config.window, pooling, jitter=False, seed=args.seed, blendshapes=blend)
    fold_s = group_kfold(groups, args.folds, seed=args.seed)

    def with_blendshape_model(nets: dict, subs: dict, fit_rows: np.ndarray, cal_rows: np.ndarray) -> dict:
        """The recipe's blendshape model fused into each network (``model.blendshape_model``),
        fitted on the fold's training rows and weighted on its calibration rows."""
        if not config.model.blendshape_model.enabled:
            return nets
        fused, _ = fit_blendshape_fusion(nets, train_set, codes_s[train_set.owner], positives, subs, rows=fit_rows, cal_data=test_set, cal_rows=cal_rows,
                                         cal_codes=codes_s[test_set.owner[cal_rows]], window_length=config.window.length, randomized=config.model.randomized,
                                         options=config.model.blendshape_model, half=keeps_half(family, config.model.randomized))
        return fused

    all_lms = list(range(NUM_MESH_LANDMARKS))
    subsets = {e: all_lms for e in emotions}
    positives = {e: EMOTIONS.index(e) for e in emotions}
    oof = {e: np.full(len(test_set.owner), np.nan) for e in emotions}
    oof_pruned = {e: np.full(len(test_set.owner), np.nan) for e in emotions}
    pruned_sizes: dict[str, list[int]] = {e: [] for e in emotions}
    fit_times = []
    t_pruning = 0.0
    for k in range(args.folds):
        train_samples = fold_s != k
        # inner split of the training subjects for calibration; redrawn (rarely) until every
        # emotion occurs in both parts, which Platt scaling and the fit need
        for attempt in range(100):
            inner = group_split(groups, [0.2], seed=args.seed + 1 + k + 1000 * attempt)
            fit_mask = train_samples & (inner == 0)
            cal_mask = train_samples & (inner == 1)
            if all((labels[m] == e).any() and (labels[m] != e).any() for e in emotions for m in (fit_mask, cal_mask)):
                break
        else:
            raise DataError(f"fold {k}: no split of its training subjects gives every emotion ({', '.join(emotions)}) calibration examples; use fewer --folds or more data")
        fit_rows = np.nonzero(fit_mask[train_set.owner])[0]
        cal_rows = np.nonzero(cal_mask[test_set.owner])[0]
        test_rows = np.nonzero((fold_s == k)[test_set.owner])[0]
        nets, fit_s = fit_models(family, train_set, codes_s[train_set.owner], positives, subsets, window_length=config.window.length,
                                 randomized=config.model.randomized, torch=config.model.torch, rows=fit_rows)
        nets = with_blendshape_model(nets, subsets, fit_rows, cal_rows)
        fit_times.append(fit_s)
        cal_truth = {e: codes_s[test_set.owner[cal_rows]] == positives[e] for e in emotions}
        calibrate(nets, scores(nets, test_set, subsets, cal_rows), cal_truth)
        for e, s in scores(nets, test_set, subsets, test_rows).items():
            oof[e][test_rows] = nets[e].calibrate(s)
        if prune is None:
            continue

        # the pruned variant: subsets chosen on this fold's training subjects only
        t0 = time.perf_counter()

        def fit_fold(subs: dict[str, list[int]]) -> dict:
            fold_nets, _ = fit_models(family, train_set, codes_s[train_set.owner], positives, subs, window_length=config.window.length,
                                      randomized=config.model.randomized, torch=config.model.torch, rows=fit_rows)
            fold_nets = with_blendshape_model(fold_nets, subs, fit_rows, cal_rows)
            calibrate(fold_nets, scores(fold_nets, test_set, subs, cal_rows), cal_truth)
            return fold_nets

        explain_rows = np.nonzero(fit_mask[test_set.owner])[0]
        explain = ExplainSet.build(test_set, explain_rows, labels[test_set.owner[explain_rows]], groups[test_set.owner[explain_rows]])
        last: dict = {}
        pruned = progressive_subsets(fit_fold, explain, subsets, counts, prune, lambda c, subs, n, r: last.update(nets=n), start_nets=nets)
        for e, s in scores(last["nets"], test_set, pruned, test_rows).items():
            oof_pruned[e][test_rows] = last["nets"][e].calibrate(s)
            pruned_sizes[e].append(len(pruned[e]))
        t_pruning += time.perf_counter() - t0
    truth = labels[test_set.owner]
    out = {}
    for e in emotions:
        m = binary_metrics(oof[e], truth == e, 0.5)
        out[e] = {"full": {**m, "n_landmarks": len(subsets[e])}}
        if prune is not None:
            out[e]["pruned"] = {**binary_metrics(oof_pruned[e], truth == e, 0.5), "n_landmarks": int(max(pruned_sizes[e]))}
    return {
        "emotions": out,
        "protocol": {
            "data": str(args.data),
            "layout": res.layout,
            "n_images": len(samples),
            "n_subjects": int(len(np.unique(groups))),
            "folds": args.folds,
            "grouped_by": "subject",
            "family": family,
            "decision": "calibrated probability >= 0.5 (Platt on 20% of the training subjects)",
            "window_length": config.window.length,
            "seed": args.seed,
            "fit_seconds_per_fold_all_emotions": round(float(np.mean(fit_times)), 3),
            "config": str(args.config),
            "pruned": None if prune is None else {
                "landmarks": args.pruned_landmarks,
                "schedule": [NUM_MESH_LANDMARKS, *counts],
                "chosen_on": "each fold's training subjects (IG relevance of the fold's own models), never the test fold",
                "baseline": prune.baseline,
                "ig_steps": prune.ig_steps,
                "max_samples": prune.max_samples,
                "prune_config": str(args.prune_config),
                "seconds_all_folds": round(t_pruning, 1),
            },
        },
    }


def _prune_plan(args: argparse.Namespace) -> tuple:
    """The prune options and the counts to prune through (None, [] with --no-pruned)."""
    from realtime_fer.errors import ConfigError
    from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
    from realtime_fer.training.prune_config import load_prune_config

    if args.no_pruned:
        return None, []
    target = args.pruned_landmarks
    if not 1 <= target <= NUM_MESH_LANDMARKS:
        raise ConfigError(f"--pruned-landmarks must be in [1, {NUM_MESH_LANDMARKS}], got {target}")
    prune = load_prune_config(args.prune_config).prune
    if args.prune_schedule:
        try:
            counts = [int(c) for c in args.prune_schedule.split(",") if c.strip()]
        except ValueError:
            raise ConfigError(f"--prune-schedule must be comma-separated integers, got {args.prune_schedule!r}") from None
    else:
        counts = [c for c in prune.schedule if target < c < NUM_MESH_LANDMARKS]
    counts = [c for c in counts if target < c < NUM_MESH_LANDMARKS] + [target]
    if any(b >= a for a, b in zip(counts, counts[1:])):
        raise ConfigError(f"the prune schedule must decrease, got {counts}")
    return prune, counts


def print_table(report: dict) -> None:
    print(f"{'emotion':<10} {'variant':<7} {'accuracy':>8} {'bal.acc':>8} {'AUC':>6} {'n_pos':>6} {'landmarks':>9}")
    for e, variants in report["emotions"].items():
        for name, m in variants.items():
            auc = "-" if m.get("auc") is None else f"{m['auc']:.3f}"
            print(f"{e:<10} {name:<7} {m['accuracy']:>8.3f} {m['balanced_accuracy']:>8.3f} {auc:>6} {m.get('n_pos', 0):>6} {m['n_landmarks']:>9}")


if __name__ == "__main__":
    sys.exit(main())
