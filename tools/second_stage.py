"""Measure second-stage pairwise decisions for the confusable emotion pairs, over seeds.

For each seed the recipe is trained as the generalisation report trains it (the trainer's own
``prepare`` and ``fit_and_validate``); then, per confusable pair (A, B), a binary randomized
network (random frozen hidden layer, closed-form ridge head, the recipe's ``model.randomized``)
is fitted on the training windows of A and B only (the same moving, jittered windows as the
first stage: RAF-DB / CK+ training photos set in talking motion), on the landmarks of the
regions that tell them apart (plus the blendshapes, as every model reads them), Platt-scaled on
the calibration windows of A and B, with the threshold of best balanced accuracy there.

The second stage changes only the decision: where the published top and the runner-up (by
probability, withheld emotions left out) are a pair, the pair's network decides between them.
Its probability is smoothed over time like the others. Rules: ``above`` (both at or above their
thresholds) and ``top2`` (the runner-up anywhere). One-vs-rest AUCs do not change (the
per-emotion probabilities are untouched); the decision accuracy on RAF-DB / CK+ validation does.

Beside the pairs, one more decision-side lever is scored on the same probabilities: a
**uniform prior** (class balance in the decision): each emotion's calibrated log-odds (and its
threshold) moved from its share of the calibration windows to 1/K, so that among the emotions
that pass their thresholds a rare one (fear, anger) is not held back by its rarity.

Scored: every labelled video folder (as the report: the ``evaluate`` path, smoothing, partial
windows in short runs) before and after, and the validation photos. The shared clips are the
measurement: nothing is fitted on them.

    python tools/second_stage.py --seeds 0,1,2 --output runs/second_stage.json
    python tools/second_stage.py --regions areas --rules above --seeds 0   # one variant, one seed

Region kinds (``--regions``): ``areas`` (:data:`PAIR_AREAS`), ``union`` (the two emotions'
first-stage landmarks), ``blendshapes`` (the pooled blendshapes alone), ``full`` (the mesh).

Exit status 2 with one ``error:`` line on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.data.extract import extract_dataset, with_blendshapes  # noqa: E402
from realtime_fer.data.windows import clip_windows  # noqa: E402
from realtime_fer.errors import ConfigError, DataError, FerError  # noqa: E402
from realtime_fer.io_atomic import write_text_atomic  # noqa: E402
from realtime_fer.labels import EMOTIONS  # noqa: E402
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS  # noqa: E402
from realtime_fer.models.bundle import FALLBACK, decide, load_bundle  # noqa: E402
from realtime_fer.models.calibration import choose_threshold, fit_platt  # noqa: E402
from realtime_fer.models.metrics import roc_auc  # noqa: E402
from realtime_fer.models.scorer import BundleScorer  # noqa: E402
from realtime_fer.models.smoothing import SmoothingOptions  # noqa: E402
from realtime_fer.training.config import load_train_config  # noqa: E402
from realtime_fer.training.evaluate import smooth_clip  # noqa: E402
from realtime_fer.training.fitting import fit_models, scores  # noqa: E402
from realtime_fer.training.report import seeded  # noqa: E402
from realtime_fer.training.trainer import default_subsets, fit_and_validate, prepare, write_trained_bundle  # noqa: E402
from realtime_fer.training.video_protocol import video_protocol  # noqa: E402

log = logging.getLogger("second_stage")
VIDEO_ROOT = ROOT.parent / "shared" / "data" / "video"
REGIONS = json.loads((ROOT / "realtime_fer/assets/face_regions.json").read_text())

#: Per pair, the face areas (``face_regions.json`` ``areas``) that tell its two emotions apart.
PAIR_AREAS: dict[tuple[str, str], tuple[str, ...]] = {
    ("fear", "surprise"): ("brows", "eyes", "forehead"),
    ("anger", "disgust"): ("nose", "around mouth", "mouth"),
    ("neutral", "sad"): ("brows", "eyes", "mouth", "around mouth", "chin and jaw"),
    ("disgust", "sad"): ("nose", "around mouth", "mouth", "brows"),
    ("disgust", "neutral"): ("nose", "around mouth", "mouth", "brows"),
}


def area_landmarks(areas: tuple[str, ...]) -> list[int]:
    return [i for i, a in enumerate(REGIONS["areas"]) if a in areas]


def pair_subsets(kind: str, first_stage: dict[str, list[int]]) -> dict[tuple[str, str], list[int]]:
    """Each pair's landmarks: ``areas`` (the regions above), ``union`` (the union of the two
    emotions' first-stage landmarks), ``blendshapes`` (none: the blendshapes alone) or ``full``
    (the whole mesh)."""
    out = {}
    for (a, b), areas in PAIR_AREAS.items():
        if kind == "areas":
            out[(a, b)] = area_landmarks(areas)
        elif kind == "union":
            out[(a, b)] = sorted(set(first_stage[a]) | set(first_stage[b]))
        elif kind == "blendshapes":
            out[(a, b)] = []
        elif kind == "full":
            out[(a, b)] = list(range(NUM_MESH_LANDMARKS))
        else:
            raise ConfigError(f"unknown region kind {kind!r}")
    return out


def fit_pairs(cfg, prep, subsets: dict[tuple[str, str], list[int]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per pair: a binary network (A positive) on the training windows of A and B, Platt scaling
    and a balanced-accuracy threshold on the calibration windows of A and B."""
    out = {}
    for (a, b), subset in subsets.items():
        ca, cb = EMOTIONS.index(a), EMOTIONS.index(b)
        rows = prep.train_rows[np.isin(prep.codes_train[prep.train_rows], [ca, cb])]
        cal = prep.cal_rows[np.isin(prep.codes_plain[prep.cal_rows], [ca, cb])]
        missing = [e for e, c in ((a, ca), (b, cb)) if e not in prep.emotions or not np.any(prep.codes_train[rows] == c) or not np.any(prep.codes_plain[cal] == c)]
        if missing:
            log.warning("pair %s|%s left out: no model or no training / calibration windows of %s", a, b, ", ".join(missing))
            continue
        name = f"{a}|{b}"
        nets, _ = fit_models("randomized", prep.jittered, prep.codes_train, {name: ca}, {name: subset}, window_length=cfg.window.length,
                             randomized=cfg.model.randomized, rows=rows, subspace=prep.subspace)
        net = nets[name]
        s = scores({name: net}, prep.plain, {name: subset}, cal)[name]
        truth = prep.codes_plain[cal] == ca
        net.platt_a, net.platt_b = fit_platt(s, truth)
        thr = choose_threshold(net.calibrate(s), truth, "balanced_accuracy")
        out[(a, b)] = {"net": net, "landmarks": subset, "threshold": thr, "cal_auc": roc_auc(s, truth), "n_train": int(len(rows))}
    return out


def second_stage(probs: dict[str, np.ndarray], thresholds: dict[str, float], pair_probs: dict[tuple[str, str], np.ndarray], pair_thr: dict[tuple[str, str], float], rule: str) -> np.ndarray:
    """The published tops with the pairs deciding where the top and the runner-up are a pair."""
    names = list(probs)
    tops = decide(probs, thresholds)
    th = np.array([thresholds[e] for e in names])
    p = np.stack([np.asarray(probs[e], np.float64) for e in names], axis=1)
    ranked = np.where(np.isfinite(th)[None, :], p, -np.inf)
    order = np.argsort(-ranked, axis=1)
    first, second = np.array(names)[order[:, 0]], np.array(names)[order[:, 1]]
    second_above = p[np.arange(len(p)), order[:, 1]] >= th[order[:, 1]]
    out = tops.copy()
    for (a, b), q in pair_probs.items():
        if a not in probs or b not in probs:
            continue
        fire = (tops == first) & (((first == a) & (second == b)) | ((first == b) & (second == a)))
        if rule == "above":
            fire &= second_above
        out[fire] = np.where(np.asarray(q)[fire] >= pair_thr[(a, b)], a, b)
    return out


def uniform_prior(probs: dict[str, np.ndarray], thresholds: dict[str, float], priors: dict[str, float]) -> np.ndarray:
    """The tops with each emotion's calibrated log-odds moved from its calibration prior to a
    uniform one (``logit(1/K) - logit(prior)``), its threshold moved alike: the same emotions
    pass their thresholds, and among them a rare emotion (fear, anger) is no longer held back by
    how rare it was in the calibration windows (class balance in the decision)."""
    k = sum(1 for e in probs if np.isfinite(thresholds[e]))

    def logit(p: np.ndarray | float) -> np.ndarray:
        q = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
        return np.log(q / (1 - q))

    shift = {e: float(logit(1.0 / k) - logit(priors[e])) for e in probs}
    moved = {e: 1.0 / (1.0 + np.exp(-(logit(p) + shift[e]))) for e, p in probs.items()}
    moved_thr = {e: (t if not np.isfinite(t) else float(1.0 / (1.0 + np.exp(-(logit(t) + shift[e]))))) for e, t in thresholds.items()}
    return decide(moved, moved_thr)


def labelled_video_dirs() -> list[Path]:
    """The report's own rule: every label-named folder of ../shared/data/video."""
    sys.path.insert(0, str(ROOT / "tools"))
    from generalisation_report import labelled_video_dirs as dirs

    return dirs(VIDEO_ROOT)


def video_sets(bundle_dir: Path, video_dirs: list[Path], pairs_by_variant: dict[str, dict], rules: list[str], cache_dir: str, smoothing: SmoothingOptions, priors: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per variant ('before', '<regions>/<rule>'), per folder: the video protocol section."""
    model = load_bundle(bundle_dir)
    scorer = BundleScorer(model, device="cpu")
    thresholds = model.thresholds
    window = model.window
    out: dict[str, dict[str, Any]] = {}
    agree: dict[tuple[str, str, str], float] = {}
    for d in video_dirs:
        res = extract_dataset(d, cache_dir, with_blendshapes(None, True), progress=False)
        tops: dict[str, list[np.ndarray]] = {}
        clip_rows: dict[int, np.ndarray] = {}
        n = 0
        for i, s in enumerate(res.samples):
            clip = clip_windows(s, window, blendshapes=True, partial="short")
            if len(clip.windows) == 0:
                clip_rows[i] = np.zeros(0, np.int64)
                continue
            p = scorer.predict(clip.windows, clip.blendshapes)
            extra = {}
            for variant, pairs in pairs_by_variant.items():
                for (a, b), fp in pairs.items():
                    net = fp["net"]
                    extra[f"{variant}:{a}|{b}"] = net.probability(clip.windows[:, :, fp["landmarks"], :], clip.blendshapes)
            sm = smooth_clip({**p, **extra}, clip.times, clip.run, smoothing)
            label = s.ref.label
            for variant, pairs in pairs_by_variant.items():  # does the pair alone side with the clip's label?
                for (a, b), fp in pairs.items():
                    if label in (a, b):
                        says_a = sm[f"{variant}:{a}|{b}"] >= fp["threshold"]
                        agree[(variant, f"{d.name}/{s.ref.path.name}", f"{a}|{b}")] = float(np.mean(says_a == (label == a)))
            sp = {e: sm[e] for e in model.emotions}
            tops.setdefault("before", []).append(decide(sp, thresholds))
            tops.setdefault("uniform prior", []).append(uniform_prior(sp, thresholds, priors))
            for variant, pairs in pairs_by_variant.items():
                pp = {k: sm[f"{variant}:{k[0]}|{k[1]}"] for k in pairs}
                pt = {k: v["threshold"] for k, v in pairs.items()}
                for rule in rules:
                    tops.setdefault(f"{variant}/{rule}", []).append(second_stage(sp, thresholds, pp, pt, rule))
            clip_rows[i] = np.arange(n, n + len(clip.windows))
            n += len(clip.windows)
        for variant, parts in tops.items():
            out.setdefault(variant, {})[d.name] = video_protocol([s.ref for s in res.samples], clip_rows, np.concatenate(parts).astype(str), list(model.emotions), smoothing)
    for (variant, clip, pair), v in agree.items():
        out.setdefault("pair_agreement", {}).setdefault(variant, {}).setdefault(clip, {})[pair] = v
    return out


def joined(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All folders as one set (the report's ``video``): clips right, mean window recall, per
    emotion window recall, and the window confusion counts."""
    hits: Counter = Counter()
    total: Counter = Counter()
    conf: Counter = Counter()
    right = n = 0
    for sec in sections.values():
        right += sec["clips_right"]
        n += sec["n_clips"]
        c = sec["confusion"]
        for r, t in enumerate(c["true"]):
            for k, pl in enumerate(c["predicted"]):
                conf[(t, pl)] += c["windows"][r][k]
                total[t] += c["windows"][r][k]
                if t == pl:
                    hits[t] += c["windows"][r][k]
    recall = {e: hits[e] / total[e] for e in EMOTIONS if total[e]}
    return {"clips_right": right, "n_clips": n, "mean_window_recall": float(np.mean(list(recall.values()))), "recall": recall,
            "confusion": {f"{t}>{p}": v for (t, p), v in conf.items() if v},
            "clips": {f"{f}/{Path(k).name}": (c["label"], c["vote"]) for f, sec in sections.items() for k, c in sec["clips"].items()}}


def photo_sets(prep, fit, pairs_by_variant: dict[str, dict], rules: list[str], withheld: dict[str, str], priors: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per variant and source: the decision accuracy on validation windows, the pairwise AUC on
    the pair's own validation windows, and the confusions of the pairs."""
    rows = prep.val_rows
    raw = scores(fit.nets, prep.plain, fit.subsets, rows)
    probs = {e: fit.nets[e].calibrate(raw[e]) for e in fit.nets}
    thresholds = {e: (float("inf") if e in withheld else t) for e, t in fit.thresholds.items()}
    truth = np.array(EMOTIONS)[prep.codes_plain[rows]]
    source = np.array([g.split(":", 1)[0] for g in prep.data.groups])[prep.plain.owner[rows]]
    variants = {"before": decide(probs, thresholds), "uniform prior": uniform_prior(probs, thresholds, priors)}
    # windows with no emotion at or above its threshold get the fallback: named apart in the errors
    none_above = ~np.any(np.stack([probs[e] >= thresholds[e] for e in probs], axis=1), axis=1)
    pair_auc: dict[str, dict[str, float]] = {}
    for variant, pairs in pairs_by_variant.items():
        pp = {k: v["net"].calibrate(v["net"].score_pooled(prep.plain.features[np.ix_(rows, prep.plain.columns(v["landmarks"]))])) for k, v in pairs.items()}
        pt = {k: v["threshold"] for k, v in pairs.items()}
        for rule in rules:
            variants[f"{variant}/{rule}"] = second_stage(probs, thresholds, pp, pt, rule)
        for (a, b), q in pp.items():
            for src in np.unique(source):
                m = (source == src) & np.isin(truth, [a, b])
                if (truth[m] == a).any() and (truth[m] == b).any():
                    pair_auc.setdefault(variant, {})[f"{src}:{a}|{b}"] = roc_auc(q[m], truth[m] == a)
            pair_auc.setdefault(variant, {})[f"cal:{a}|{b}"] = pairs[(a, b)]["cal_auc"]
    out: dict[str, dict[str, Any]] = {}
    keep = np.isin(truth, list(fit.nets) + [FALLBACK])
    for variant, tops in variants.items():
        for src in np.unique(source):
            m = (source == src) & keep
            conf = Counter(f"{t}>{'(none above threshold)' if f else p}" for t, p, f in zip(truth[m], tops[m], none_above[m]) if t != p)
            out.setdefault(variant, {})[str(src)] = {"accuracy": float(np.mean(tops[m] == truth[m])), "n": int(m.sum()), "errors": dict(conf.most_common())}
        if variant.split("/")[0] in pair_auc:
            out[variant]["pair_auc"] = pair_auc[variant.split("/")[0]]
    return out


def run_seed(config, seed: int, video_dirs: list[Path], region_kinds: list[str], rules: list[str], smoothing: SmoothingOptions) -> dict[str, Any]:
    cfg = seeded(config, seed)
    prep = prepare(cfg, progress=False)
    subsets = default_subsets(cfg, prep.emotions)
    fit = fit_and_validate(cfg, prep, subsets)
    cal_codes = prep.codes_plain[prep.cal_rows]
    priors = {e: float(np.mean(cal_codes == EMOTIONS.index(e))) for e in fit.nets}  # each emotion's share of the calibration windows
    t0 = time.perf_counter()
    pairs_by_variant = {kind: fit_pairs(cfg, prep, pair_subsets(kind, subsets)) for kind in region_kinds}
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="fer_second_") as tmp:
        out = Path(tmp) / "bundle"
        write_trained_bundle(out, cfg, prep, fit, cfg.model.family)
        videos = video_sets(out, video_dirs, pairs_by_variant, rules, cfg.data.cache_dir, smoothing, priors)
    photos = photo_sets(prep, fit, pairs_by_variant, rules, cfg.model.withheld, priors)
    result = {"seed": seed, "pair_fit_seconds": round(fit_s, 1), "priors": priors,
              "pairs": {k: {f"{a}|{b}": {"n_landmarks": len(v["landmarks"]), "threshold": v["threshold"], "n_train": v["n_train"]} for (a, b), v in p.items()} for k, p in pairs_by_variant.items()},
              "variants": {}}
    result["pair_agreement"] = videos.pop("pair_agreement", {})
    for variant, sections in videos.items():
        result["variants"][variant] = {"video": joined(sections), "folders": {f: {"clips_right": s["clips_right"], "mean_window_recall": s["mean_window_recall"]} for f, s in sections.items()}, "photos": photos.get(variant, {})}
    return result


def summary(runs: list[dict[str, Any]]) -> str:
    """Mean ± sd over seeds per variant: clips right, mean window recall, per-emotion recall,
    RAF-DB / CK+ decision accuracy."""
    variants = list(runs[0]["variants"])
    emos = [e for e in EMOTIONS if e in runs[0]["variants"]["before"]["video"]["recall"]]
    head = ["variant", "clips right", "mean window recall"] + emos + ["mead clips", "wild clips", "RAF-DB val acc", "CK+ val acc"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def ms(vals: list[float], d: int) -> str:
        a = np.asarray(vals, float)
        return f"{a.mean():.{d}f} ± {a.std(ddof=1) if len(a) > 1 else 0:.{d}f}"

    for v in variants:
        rs = [r["variants"][v] for r in runs]
        row = [v, ms([r["video"]["clips_right"] for r in rs], 1), ms([r["video"]["mean_window_recall"] for r in rs], 3)]
        row += [ms([r["video"]["recall"].get(e, np.nan) for r in rs], 2) for e in emos]
        for f in ("mead", "wild"):
            row.append(ms([r["folders"].get(f, {}).get("clips_right", np.nan) for r in rs], 1))
        for src in ("rafdb", "ckplus48"):
            row.append(ms([r["photos"].get(src, {}).get("accuracy", np.nan) for r in rs], 3))
        lines.append("| " + " | ".join(row) + " |")
    for v in [x for x in ("before", "areas/above") if x in variants]:
        for where, get in (("15 clips (windows)", lambda r: r["video"]["confusion"]), ("RAF-DB validation", lambda r: r["photos"].get("rafdb", {}).get("errors", {}))):
            total: Counter = Counter()
            for r in runs:
                total.update({k: n for k, n in get(r["variants"][v]).items() if k.split(">")[0] != k.split(">")[1]})
            lines.append(f"\n{v}, {where}, errors summed over the seeds (true>published): " + ", ".join(f"{k} {n}" for k, n in total.most_common(10)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/train_default.yaml"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--regions", default="areas,union,blendshapes,full", help="comma-separated: areas, union, blendshapes, full")
    ap.add_argument("--rules", default="above,top2", help="comma-separated: above, top2")
    ap.add_argument("--video", nargs="+", default=None)
    ap.add_argument("--output", default="runs/second_stage.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("realtime_fer.data.extract", "realtime_fer.data.layouts", "realtime_fer.models.scorer", "realtime_fer.models.bundle_cache", "realtime_fer.models.bundle"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_train_config(args.config)
        video = [Path(v) for v in args.video] if args.video else labelled_video_dirs()
        if not video or any(not v.is_dir() for v in video):
            raise DataError(f"no labelled video folder: {', '.join(map(str, video)) or '(none found)'}")
        kinds = [k for k in args.regions.split(",") if k]
        rules = [r for r in args.rules.split(",") if r]
        if set(rules) - {"above", "top2"} or set(kinds) - {"areas", "union", "blendshapes", "full"}:
            raise ConfigError("--rules takes above,top2 and --regions areas,union,blendshapes,full")
        runs = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = run_seed(config, seed, video, kinds, rules, SmoothingOptions())
            runs.append(run)
            b = run["variants"]["before"]["video"]
            log.info("seed %d: before %d/%d, %.3f; %s", seed, b["clips_right"], b["n_clips"], b["mean_window_recall"],
                     "; ".join(f"{v} {r['video']['clips_right']}, {r['video']['mean_window_recall']:.3f}" for v, r in run["variants"].items() if v != "before"))
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        table = summary(runs)
        write_text_atomic(out, json.dumps({"config": args.config, "seeds": [r["seed"] for r in runs], "runs": runs}, indent=2, default=str))
        write_text_atomic(out.with_suffix(".md"), table + "\n")
        print(table)
        return 0
    except (FerError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
