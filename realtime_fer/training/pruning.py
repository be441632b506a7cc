"""Progressive landmark pruning guided by dataset-level Integrated Gradients, with a random
ablation (``realtime-fer prune``).

For every emotion, starting from its full landmark set: compute the dataset-level relevance of
the current model's landmarks on the **training** split (:mod:`realtime_fer.explain.relevance`,
on the training samples' time-pooled features), keep the most relevant ones for the next count
of the schedule, retrain the fast network on that subset and measure it on the validation split.
In the same run, the ablation: random subsets of every size (several seeds; one subset per size
and seed shared by all emotions, so they share hidden features and train together) and the full
set. Each emotion keeps the smallest IG subset whose validation criterion is within the
tolerance of its best; the chosen subsets are trained once more into a bundle.

:func:`progressive_subsets` is the pruning loop alone (also used inside each fold of
``tools/reproduce_paper.py``); :func:`run_prune` is the whole command.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from realtime_fer.config_io import to_dict
from realtime_fer.explain.baselines import BaselineBank
from realtime_fer.explain.heatmap import save_relevance_png
from realtime_fer.explain.relevance import LandmarkRelevance, landmark_relevance
from realtime_fer.io_atomic import write_text_atomic
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.network import Network
from realtime_fer.training.cost import inference_cost
from realtime_fer.training.curves import save_curve_png
from realtime_fer.training.features import PooledSet
from realtime_fer.training.prune_config import PruneConfig, PruneOptions
from realtime_fer.training.trainer import TRAIN, FitResult, default_subsets, fit_and_validate, prepare, write_trained_bundle

log = logging.getLogger(__name__)

Subsets = dict[str, list[int]]


@dataclass
class ExplainSet:
    """The windows pruning explains: time-pooled features (no jitter) of the training samples,
    with their labels and groups, and the baseline faces derived from them."""

    data: PooledSet
    rows: np.ndarray
    """Rows of ``data`` that are training windows."""
    labels: np.ndarray
    """(len(rows),) label of each."""
    groups: np.ndarray
    """(len(rows),) subject/group of each (per-subject neutral baselines)."""
    bank: BaselineBank
    seconds: float = 0.0
    """Time spent computing relevance so far."""

    @classmethod
    def build(cls, data: PooledSet, rows: np.ndarray, labels: Sequence[str], groups: Sequence[str]) -> "ExplainSet":
        """From pooled features over the full mesh (their ``mean`` part is each window's face)."""
        if "mean" not in data.pooling:
            raise ValueError("pruning needs 'mean' pooling: a window's face is its time-mean")
        k = data.pooling.index("mean")
        width = 3 * NUM_MESH_LANDMARKS
        faces = data.features[rows, k * width : (k + 1) * width].reshape(len(rows), NUM_MESH_LANDMARKS, 3)
        lab, grp = np.asarray(labels).astype(str), np.asarray(groups).astype(str)
        return cls(data, np.asarray(rows), lab, grp, BaselineBank.from_faces(faces, lab, grp))

    def relevance(self, emotion: str, net: Network, landmarks: Sequence[int], options: PruneOptions) -> LandmarkRelevance:
        """Dataset-level relevance of ``net``'s landmarks over (up to ``max_samples``) training
        windows of ``emotion``."""
        t0 = time.perf_counter()
        pos = np.nonzero(self.labels == emotion)[0]
        if len(pos) > options.max_samples:
            pos = pos[np.unique(np.linspace(0, len(pos) - 1, options.max_samples).round().astype(int))]
        x = self.data.features[np.ix_(self.rows[pos], self.data.columns(landmarks))]
        bs = self.bank.baselines(options.baseline, emotion, self.groups[pos])
        rel = landmark_relevance(net, x, bs, landmarks, emotion=emotion, pooled=True, n_steps=options.ig_steps, method=options.ig_method, dtype="float32",
                                 visible_only=False)  # the rankings of docs/pruning.md were made so
        self.seconds += time.perf_counter() - t0
        return rel


def progressive_subsets(
    fit: Callable[[Subsets], dict[str, Network]],
    explain: ExplainSet,
    start: Subsets,
    counts: Sequence[int],
    options: PruneOptions,
    on_step: Callable[[int, Subsets, dict[str, Network], dict[str, LandmarkRelevance]], None] | None = None,
    start_nets: dict[str, Network] | None = None,
) -> Subsets:
    """Prune every emotion's subset through ``counts``: relevance of the current model, keep the
    most relevant, refit.

    Args:
        fit: trains (and calibrates) one network per emotion of the given subsets.
        explain: the training windows explained at every step.
        start: each emotion's starting landmarks.
        counts: decreasing landmark counts to prune to (an emotion never grows: min(count, size)).
        on_step: called after each fit with (count, subsets, nets, relevance that chose them);
            first with the starting subsets and an empty relevance dict.
        start_nets: networks already fitted on ``start`` (skips the first fit).

    Returns:
        The subsets of the last count (sorted mesh indices).
    """
    subsets = {e: list(v) for e, v in start.items()}
    nets = start_nets if start_nets is not None else fit(subsets)
    if on_step:
        on_step(max(len(v) for v in subsets.values()), subsets, nets, {})
    for count in counts:
        rels = {e: explain.relevance(e, nets[e], subsets[e], options) for e in subsets}
        subsets = {e: sorted(rels[e].most_relevant(min(count, len(subsets[e])), by=options.ranking)) for e in subsets}
        nets = fit(subsets)
        if on_step:
            on_step(count, subsets, nets, rels)
    return subsets


def random_subset(full: Sequence[int], count: int, seed: int) -> list[int]:
    """A random ``count``-subset of ``full``, a pure function of (count, seed)."""
    rng = np.random.default_rng([seed, count])
    return sorted(int(i) for i in rng.choice(np.asarray(full), size=min(count, len(full)), replace=False))


def _metric(fit: FitResult, emotion: str, criterion: str) -> float | None:
    v = fit.metrics[emotion].get(criterion)
    return None if v is None else float(v)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("auc", "accuracy", "balanced_accuracy", "f1", "n_pos", "n_neg")
    return {k: m.get(k) for k in keys}


def _margin_summary(margins: list[float]) -> dict[str, Any]:
    """IG minus random-mean criterion over the schedule: mean, range, and at how many sizes IG won."""
    if not margins:
        return {"sizes": 0}
    m = np.asarray(margins)
    return {"sizes": len(m), "ig_better": int((m > 0).sum()), "mean": float(m.mean()), "min": float(m.min()), "max": float(m.max())}


def choose_count(counts: Sequence[int], values: Sequence[float | None], tolerance: float, max_count: int | None = None) -> int:
    """The smallest count whose value is within ``tolerance`` of the best value; with
    ``max_count`` (a cost budget), among the counts at or under it only (the best is then the
    best of those)."""
    allowed = [c for c in counts if max_count is None or c <= max_count] or [min(counts)]
    known = [(c, v) for c, v in zip(counts, values) if v is not None and c in allowed]
    if not known:
        return max(allowed)
    best = max(v for _, v in known)
    return min(c for c, v in known if v >= best - tolerance)


def write_pruned_train_config(path: Path, config: PruneConfig, subsets: Subsets) -> Path:
    """A training config (``realtime-fer train --config``) with the chosen subsets in
    ``model.landmark_subsets``: training it gives the pruned bundle again."""
    import yaml

    plain = to_dict(config)
    prune = plain.pop("prune")
    plain["model"]["landmark_subsets"] = {e: [int(i) for i in v] for e, v in subsets.items()}
    plain["output"] = prune["bundle"]
    header = "# Written by realtime-fer prune: the training config of the pruned bundle.\n"
    write_text_atomic(path, header + yaml.safe_dump(plain, sort_keys=False, default_flow_style=None, width=200))
    return path


def run_prune(config: PruneConfig, *, progress: Callable[[str], None] | None = None, data_progress: bool = True) -> dict[str, Any]:
    """Run the whole pruning study and write its outputs (see the module docstring).

    Writes, under ``config.prune.output``: ``curves.json``, ``curve_<emotion>.png``,
    ``relevance_<emotion>.png`` (relevance of the full model), ``report.json``,
    ``train_pruned.yaml`` (the training config of the pruned bundle); and the pruned bundle at
    ``config.prune.bundle``. Returns the report.
    """
    t_start = time.perf_counter()
    opts = config.prune
    say = progress or (lambda msg: None)
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    family = config.model.family

    say("loading data and building windows")
    prep = prepare(config, progress=data_progress)
    emotions = prep.emotions
    full = default_subsets(config, emotions)
    full_size = max(len(v) for v in full.values())
    counts = [c for c in opts.schedule if c < full_size]
    grid = [full_size] + counts
    train_samples = np.nonzero(prep.split == TRAIN)[0]
    # with motion augmentation the models read movement (spread, extremes): explain the moving
    # training windows they were fitted on, else the still ones
    source = prep.jittered if config.data.motion.sources else prep.plain
    rows = np.nonzero(np.isin(source.owner, train_samples))[0]
    owner = source.owner[rows]
    explain = ExplainSet.build(source, rows, prep.data.labels[owner], prep.data.groups[owner])
    timing: dict[str, float] = {"prepare_s": round(prep.seconds, 2)}

    fits: dict[int, FitResult] = {}
    ig_subsets: dict[int, Subsets] = {}
    relevance_full: dict[str, LandmarkRelevance] = {}
    completeness: list[float] = []
    t_fit = [0.0]

    def fit_fn(subsets: Subsets) -> dict[str, Network]:
        t0 = time.perf_counter()
        result = fit_and_validate(config, prep, subsets, family)
        t_fit[0] += time.perf_counter() - t0
        fits[-1] = result
        return result.nets

    def on_step(count: int, subsets: Subsets, nets: dict[str, Network], rels: dict[str, LandmarkRelevance]) -> None:
        fits[count] = fits.pop(-1)
        ig_subsets[count] = subsets
        for r in rels.values():
            completeness.append(r.completeness["max_relative_delta"])
        if counts and count == counts[0]:  # chosen by the relevance of the full model
            relevance_full.update(rels)
        say(f"IG pruning: {count} landmarks fitted")

    t0 = time.perf_counter()
    progressive_subsets(fit_fn, explain, full, counts, opts, on_step)
    timing["ig_pruning_s"] = round(time.perf_counter() - t0, 2)
    timing["ig_relevance_s"] = round(explain.seconds, 2)

    # the ablation: random subsets of every size, shared by all emotions
    t0 = time.perf_counter()
    random_fits: dict[int, list[FitResult]] = {c: [] for c in counts}
    all_lms = sorted(set().union(*map(set, full.values())))
    for c in counts:
        for seed in range(opts.random_seeds):
            sub = random_subset(all_lms, c, seed)
            random_fits[c].append(fit_and_validate(config, prep, {e: sub for e in emotions}, family))
        say(f"random ablation: {c} landmarks x {opts.random_seeds} seeds")
    timing["random_ablation_s"] = round(time.perf_counter() - t0, 2)
    timing["fit_s_total"] = round(t_fit[0] + sum(f.fit_seconds for v in random_fits.values() for f in v), 2)

    # curves and choices
    curves: dict[str, Any] = {}
    chosen: Subsets = {}
    for e in emotions:
        crit = opts.criterion
        ig_vals = [_metric(fits[c], e, crit) for c in grid]
        split_used = "validation"
        if all(v is None for v in ig_vals):  # no validation positive: fall back to calibration AUC
            crit, split_used = "calibration_auc", "calibration (no validation positive; AUC is unaffected by the monotone Platt calibration fitted there)"
            ig_vals = [fits[c].calibration_auc.get(e) for c in grid]
        pick = choose_count(grid, ig_vals, opts.tolerance, opts.max_landmarks)
        chosen[e] = ig_subsets[pick][e]
        entries = []
        for c, v in zip(grid, ig_vals):
            rnd = [(_metric(f, e, crit) if crit != "calibration_auc" else f.calibration_auc.get(e)) for f in random_fits.get(c, [])]
            rnd = [r for r in rnd if r is not None]
            entries.append({
                "n_landmarks": c,
                "ig": {crit: v, **_summary(fits[c].metrics[e])},
                "random": {"values": rnd, "mean": float(np.mean(rnd)) if rnd else None, "std": float(np.std(rnd)) if rnd else None} if c != full_size else None,
                "margin": (v - float(np.mean(rnd))) if rnd and v is not None else None,
            })
        curves[e] = {"criterion": crit, "split": split_used, "points": entries, "chosen": pick, "full": ig_vals[0], "chosen_value": ig_vals[grid.index(pick)]}
        save_curve_png(
            out_dir / f"curve_{e}.png", grid, ig_vals,
            [p["random"]["mean"] if p["random"] else None for p in entries],
            [p["random"]["std"] if p["random"] else None for p in entries],
            ig_vals[0], chosen=pick, title=f"{e}: {crit} vs landmarks ({split_used.split(' ')[0]} split)", metric=crit, tolerance=opts.tolerance,
        )
        if e in relevance_full:
            r = relevance_full[e]
            save_relevance_png(out_dir / f"relevance_{e}.png", r.landmarks, r.relevance, f"{e}: landmark relevance (full model)",
                               f"IG vs {opts.baseline} baseline on {r.n_samples} training windows; chosen subset: {pick} landmarks")

    # the pruned bundle: the chosen subsets, trained once more
    say("training the pruned bundle")
    final = fit_and_validate(config, prep, chosen, family)
    base = fits[full_size]
    pruning_meta = {
        "pruning": {
            "method": "progressive dataset-level Integrated Gradients on the training split",
            "baseline": opts.baseline, "ranking": opts.ranking, "ig_steps": opts.ig_steps, "criterion": opts.criterion, "tolerance": opts.tolerance, "max_landmarks": opts.max_landmarks,
            "schedule": grid, "chosen": {e: len(v) for e, v in chosen.items()},
        }
    }
    write_trained_bundle(Path(opts.bundle), config, prep, final, family, extra_training=pruning_meta)
    write_pruned_train_config(out_dir / "train_pruned.yaml", config, chosen)

    say("measuring inference cost")
    cost = {}
    for e in emotions:
        c_full, c_pruned = inference_cost(base.nets[e], opts.time_runs), inference_cost(final.nets[e], opts.time_runs)
        cost[e] = {"full": c_full, "pruned": c_pruned, "macs_saved": round(1 - c_pruned["macs"] / c_full["macs"], 4),
                   "time_saved": round(1 - c_pruned["onnx_ms_per_window"] / c_full["onnx_ms_per_window"], 4) if c_full["onnx_ms_per_window"] else None}
    sum_full = sum(v["full"]["onnx_ms_per_window"] for v in cost.values())
    sum_pruned = sum(v["pruned"]["onnx_ms_per_window"] for v in cost.values())

    timing["total_s"] = round(time.perf_counter() - t_start, 2)
    report = {
        "bundle": str(opts.bundle),
        "emotions": {
            e: {
                "n_landmarks": {"full": len(full[e]), "pruned": len(chosen[e])},
                "landmarks": chosen[e],
                "criterion": curves[e]["criterion"],
                "selection": {"criterion": curves[e]["criterion"], "split": curves[e]["split"], "full": curves[e]["full"], "chosen": curves[e]["chosen_value"]},
                "full": _summary(base.metrics[e]),
                "pruned": _summary(final.metrics[e]),
                "by_source": {s: {"full": _summary(base.by_source[s]["emotions"][e]), "pruned": _summary(final.by_source[s]["emotions"][e])} for s in final.by_source},
                "margins": {p["n_landmarks"]: p["margin"] for p in curves[e]["points"] if p["margin"] is not None},
                "margin_summary": _margin_summary([p["margin"] for p in curves[e]["points"] if p["margin"] is not None]),
                "cost": cost[e],
            }
            for e in emotions
        },
        "overall": {"full": base.overall, "pruned": final.overall},
        "cost_all_emotions": {"onnx_ms_per_window_full": round(sum_full, 4), "onnx_ms_per_window_pruned": round(sum_pruned, 4),
                              "macs_full": sum(v["full"]["macs"] for v in cost.values()), "macs_pruned": sum(v["pruned"]["macs"] for v in cost.values())},
        "completeness_max_relative_delta": float(max(completeness)) if completeness else None,
        "skipped": prep.skipped,
        "windows": {"train": int(len(prep.train_rows)), "calibration": int(len(prep.cal_rows)), "validation": int(len(prep.val_rows)), "explained_per_emotion_max": opts.max_samples},
        "timing": timing,
        "config": to_dict(config),
    }
    write_text_atomic(out_dir / "curves.json", json.dumps({"schedule": grid, "criterion": opts.criterion, "tolerance": opts.tolerance, "emotions": curves}, indent=1) + "\n")
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    log.info("pruning done in %.1f s -> %s, %s", timing["total_s"], out_dir, opts.bundle)
    return report
