"""Measure training recipes for talking video: each lever on the video protocol, RAF-DB and CK+.

For every variant (window length, pooling, speech/head-motion augmentation, calibration on
moving windows) this trains all binary models on the training split of the config's sources
(RAF-DB train + CK+48), and reports, side by side:

* the **video protocol** on held-out labelled clips (default ``../shared/data/video/mead``,
  whose actors are never used for training): per-emotion window recall of the decision rule,
  its mean over the clips' emotions, clip accuracy (majority vote of the windows), and the
  share of neutral windows of the neutral clip;
* RAF-DB validation AUC per emotion and CK+ validation AUC of happy and surprise (the same
  held-out images as ``realtime-fer train``);
* the fit time.

Models here are scored in numpy (the same networks the bundle exports); the shipped model's
figures come from ``realtime-fer evaluate``.

    python tools/video_recipe.py --output runs/recipes.json            # all variants
    python tools/video_recipe.py --variants base,motion_t24_meanstd    # some
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.data.extract import extract_dataset  # noqa: E402
from realtime_fer.data.motion import MotionBank, MotionOptions  # noqa: E402
from realtime_fer.data.windows import iter_window_chunks  # noqa: E402
from realtime_fer.features.windows import WindowOptions  # noqa: E402
from realtime_fer.labels import EMOTIONS  # noqa: E402
from realtime_fer.models.bundle import decide  # noqa: E402
from realtime_fer.models.metrics import binary_metrics  # noqa: E402
from realtime_fer.models.network import pool  # noqa: E402
from realtime_fer.training.config import load_train_config  # noqa: E402
from realtime_fer.training.features import pooled_set  # noqa: E402
from realtime_fer.training.fitting import calibrate, fit_models, scores  # noqa: E402
from realtime_fer.training.splits import group_split  # noqa: E402
from realtime_fer.training.trainer import CALIBRATION, TRAIN, VALIDATION, load_sources  # noqa: E402

log = logging.getLogger("video_recipe")

MOTION_KEYS = ("probability", "scale", "mirror", "calibrate_with_motion", "calibration_share")
"""Variant keys passed to :class:`MotionOptions`."""
RANDOMIZED_KEYS = ("ridge", "hidden", "input_scale", "bias_scale", "balance")
"""Variant keys passed to ``model.randomized`` (RandomizedOptions)."""
# other variant keys: length, pooling, motion (bool), extra_motion (list of extra motion source
# folders), seed (offset of the window and network seeds), criterion (threshold criterion),
# train_mirror (add every training window's mirror image), motion_ref ("mean": the bank as built;
# "rest": see rest_referenced), rest_quantile

VARIANTS: dict[str, dict] = {
    "base": dict(length=8, pooling=["mean"], motion=False),
    "t24_mean": dict(length=24, pooling=["mean"], motion=False),
    "motion_t8_mean": dict(length=8, pooling=["mean"], motion=True),
    "motion_t24_mean": dict(length=24, pooling=["mean"], motion=True),
    "motion_t24_meanstd": dict(length=24, pooling=["mean", "std"], motion=True),
    "motion_t24_meanminmax": dict(length=24, pooling=["mean", "min", "max"], motion=True),
    "motion_t24_meanstd_nocal": dict(length=24, pooling=["mean", "std"], motion=True, calibrate_with_motion=False),
}

# sweep around motion_t24_meanstd: one lever at a time (runs/recipes_sweep.json)
_MS = dict(length=24, pooling=["mean", "std"], motion=True)
SWEEP: dict[str, dict] = {
    "ms24": dict(_MS),
    "ms24_nocal": dict(_MS, calibrate_with_motion=False),
    "ms24_rest": dict(_MS, motion_ref="rest"),
    "ms8_rest": dict(_MS, length=8, motion_ref="rest"),
    "m24_rest": dict(_MS, pooling=["mean"], motion_ref="rest"),
    "m8_rest": dict(_MS, length=8, pooling=["mean"], motion_ref="rest"),
    "ms24_ridge1": dict(_MS, ridge=0.1),
    "ms24_seed1": dict(_MS, seed=1),
    "ms24_seed2": dict(_MS, seed=2),
    "ms8": dict(_MS, length=8),
    "ms16": dict(_MS, length=16),
    "ms30": dict(_MS, length=30),
    "ms24_p05": dict(_MS, probability=0.5),
    "ms24_p08": dict(_MS, probability=0.8),
    "ms24_s03_10": dict(_MS, scale=[0.3, 1.0]),
    "ms24_s1_1": dict(_MS, scale=[1.0, 1.0]),
    "ms24_nomirror": dict(_MS, mirror=False),
    "ms24_balacc": dict(_MS, criterion="balanced_accuracy"),
    "ms24_ridge001": dict(_MS, ridge=0.001),
    "ms24_ridge01": dict(_MS, ridge=0.01),
    "ms24_ridge03": dict(_MS, ridge=0.03),
    "msmm24": dict(_MS, pooling=["mean", "std", "min", "max"]),
    "ms24_trainmirror": dict(_MS, train_mirror=True),
    "ms24_pyfeat": dict(_MS, extra_motion=[str(ROOT.parent / "shared/data/video/pyfeat")]),
    "std24_nomotion": dict(_MS, motion=False),
}
VARIANTS.update(SWEEP)


def rest_referenced(bank: MotionBank, quantile: float = 0.1) -> MotionBank:
    """The bank with every run's motion relative to the speaker's *rest* face (the mean of the
    run's frames whose mouth is most closed, the lowest ``quantile`` of inner-lip aperture)
    instead of the run's mean face: a talking face's mean has the mouth open (speech opens it,
    never closes it past rest), which motion relative to the mean face removes."""
    from realtime_fer.landmarks.normalize import reference_face

    ref = reference_face()
    down = np.sign(ref[17, 1] - ref[0, 1]) or 1.0  # lower lip minus upper lip, along y
    out = bank._subset(range(bank.n_clips))
    for s, n in zip(out.run_start, out.run_length):
        seg = out.frames[s : s + n]
        aperture = down * (seg[:, 14, 1] - seg[:, 13, 1])
        rest = seg[aperture <= np.quantile(aperture, quantile)].mean(axis=0)
        out.frames[s : s + n] = seg - rest[None]
    return out


def clip_windows(samples, length: int, hop: int):
    """Windows of each clip (label, windows)."""
    out = []
    for i, s in enumerate(samples):
        wins = [w for w, _ in iter_window_chunks([s], WindowOptions(length=length, hop=hop), jitter=False)]
        out.append((s.ref.path.name, s.ref.label, np.concatenate(wins) if wins else np.zeros((0, length, 468, 3), np.float32)))
    return out


def video_protocol(nets, thresholds, subsets, clips, pooling, dump: dict | None = None) -> dict:
    """Window recall per emotion, its mean, clip accuracy, neutral share of the neutral clips.
    ``dump``: filled with each clip's calibrated probabilities (clip name -> (W, E) array)."""
    per_label_hits: dict[str, list[int]] = {}
    alt_label_hits: dict[str, list[int]] = {}
    alt_votes: dict[str, tuple] = {}
    per_clip = {}
    for name, label, wins in clips:
        if len(wins) == 0:
            continue
        probs = {}
        for e, net in nets.items():
            feats = pool(wins[:, :, subsets[e], :], tuple(pooling))
            probs[e] = net.calibrate(net.score_pooled(feats))
        if dump is not None:
            dump[name] = np.stack([probs[e] for e in nets], axis=1)
        top = decide(probs, thresholds)
        # alternative rule (reported only): the emotion furthest above its own threshold, as a
        # ratio p / threshold, so that emotions with low thresholds do not win by default... and
        # ones with high thresholds are not lost when every probability is lower on video
        names = list(probs)
        p = np.stack([probs[e] for e in names], axis=1)
        thr = np.array([thresholds[e] for e in names])[None, :]
        ratio = p / np.maximum(thr, 1e-6)
        alt = np.array(names + ["neutral"])[np.where((ratio >= 1).any(axis=1), ratio.argmax(axis=1), len(names))]
        alt_hits = alt_label_hits.setdefault(label, [0, 0])
        alt_hits[0] += int(np.sum(alt == label))
        alt_hits[1] += int(len(alt))
        la, ca = np.unique(alt, return_counts=True)
        alt_votes[name] = (label, str(la[np.argmax(ca)]), float(np.mean(alt == "neutral")))
        labels, counts = np.unique(top, return_counts=True)
        share = {str(l): float(c / len(top)) for l, c in zip(labels, counts)}
        vote = str(labels[np.argmax(counts)])
        per_clip[name] = {"label": label, "vote": vote, "share": share, "windows": int(len(top))}
        hits = per_label_hits.setdefault(label, [0, 0])
        hits[0] += int(np.sum(top == label))
        hits[1] += int(len(top))
    recall = {k: v[0] / v[1] for k, v in per_label_hits.items()}
    alt_recall = {k: v[0] / v[1] for k, v in alt_label_hits.items()}
    return {
        "ratio_rule": {
            "window_recall": alt_recall,
            "mean_recall": float(np.mean(list(alt_recall.values()))) if alt_recall else None,
            "clips_right": sum(v[0] == v[1] for v in alt_votes.values()),
            "votes": {k: v[1] for k, v in alt_votes.items()},
            "neutral_share": float(np.mean([v[2] for v in alt_votes.values() if v[0] == "neutral"] or [np.nan])),
        },
        "window_recall": recall,
        "mean_recall": float(np.mean(list(recall.values()))) if recall else None,
        "clips_right": sum(c["vote"] == c["label"] for c in per_clip.values()),
        "n_clips": len(per_clip),
        "clips": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/train_default.yaml"))
    ap.add_argument("--video", default=str(ROOT.parent / "shared/data/video/mead"), help="held-out labelled clips")
    ap.add_argument("--motion", nargs="+", default=[str(ROOT.parent / "shared/data/video/talking")], help="clips of people talking (motion source)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names: " + ", ".join(VARIANTS))
    ap.add_argument("--output", default="runs/recipes.json")
    ap.add_argument("--seeds", default=None, help="comma-separated seed offsets: run every variant once per seed (NAME@sSEED)")
    ap.add_argument("--dump", default=None, help="folder for each variant's probabilities on the clips (npz)")
    ap.add_argument("--append", action="store_true", help="keep the variants already in --output (re-run ones are replaced)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    cfg = load_train_config(args.config)
    data = load_sources(cfg, progress=False)
    split = group_split(data.groups, [cfg.data.validation_fraction, cfg.data.calibration_fraction], seed=cfg.data.split_seed)
    codes_of_sample = np.array([EMOTIONS.index(l) for l in data.labels])
    source_of_sample = np.array([g.split(":", 1)[0] for g in data.groups])
    bank = MotionBank.from_videos(args.motion, cfg.data.cache_dir)
    video = extract_dataset(args.video, cfg.data.cache_dir, progress=False)
    results = json.loads(Path(args.output).read_text()) if args.append and Path(args.output).exists() else {}
    banks: dict[tuple[str, ...], MotionBank] = {}
    clip_cache: dict[int, list] = {}
    runs = [(n, n, VARIANTS[n]) for n in args.variants.split(",")]
    if args.seeds:
        runs = [(f"{n}@s{sd}", n, dict(v, seed=int(sd))) for n, _, v in runs for sd in args.seeds.split(",")]
    for name, base_name, v in runs:
        t0 = time.perf_counter()
        window = dataclasses.replace(cfg.window, length=v["length"])
        pooling = tuple(v["pooling"])
        sources = list(args.motion) + list(v.get("extra_motion", []))
        mopts = MotionOptions(sources=sources, **{k: v[k] for k in MOTION_KEYS if k in v})
        if v.get("extra_motion"):
            key = tuple(sources)
            if key not in banks:
                banks[key] = MotionBank.from_videos(sources, cfg.data.cache_dir)
            vbank = banks[key]
        else:
            vbank = bank
        if v.get("motion_ref", "mean") == "rest":
            key = ("rest", float(v.get("rest_quantile", 0.1))) + tuple(sources)
            if key not in banks:
                banks[key] = rest_referenced(vbank, float(v.get("rest_quantile", 0.1)))
            vbank = banks[key]
        train_bank, cal_bank = vbank.split(mopts.calibration_share, seed=cfg.seed)
        seed = cfg.seed + int(v.get("seed", 0))
        ropts = dataclasses.replace(cfg.model.randomized, seed=cfg.model.randomized.seed + int(v.get("seed", 0)), **{k: v[k] for k in RANDOMIZED_KEYS if k in v})
        criterion = v.get("criterion", cfg.model.threshold_criterion)
        motion_train = (train_bank, mopts) if v["motion"] else None
        motion_cal = (cal_bank, mopts) if v["motion"] and mopts.calibrate_with_motion else None
        tr_samples = [s for s, sp in zip(data.samples, split) if sp == TRAIN]
        cal_samples = [s for s, sp in zip(data.samples, split) if sp == CALIBRATION]
        val_samples = [s for s, sp in zip(data.samples, split) if sp == VALIDATION]
        tr = pooled_set(tr_samples, window, pooling, jitter=True, seed=seed, motion=motion_train, mirror=bool(v.get("train_mirror", False)))
        cal = pooled_set(cal_samples, window, pooling, jitter=motion_cal is not None, seed=seed + 1, motion=motion_cal)
        val = pooled_set(val_samples, window, pooling, jitter=False)
        idx_tr = np.flatnonzero(split == TRAIN)
        idx_cal = np.flatnonzero(split == CALIBRATION)
        idx_val = np.flatnonzero(split == VALIDATION)
        codes_tr = codes_of_sample[idx_tr][tr.owner]
        codes_cal = codes_of_sample[idx_cal][cal.owner]
        codes_val = codes_of_sample[idx_val][val.owner]
        src_val = source_of_sample[idx_val][val.owner]
        t_win = time.perf_counter() - t0
        emotions = [e for e in cfg.model.emotions if np.sum(codes_tr == EMOTIONS.index(e)) >= cfg.model.min_positives]
        positives = {e: EMOTIONS.index(e) for e in emotions}
        subsets = {e: list(range(468)) for e in emotions}
        nets, fit_s = fit_models("randomized", tr, codes_tr, positives, subsets, window_length=window.length, randomized=ropts)
        cal_scores = scores(nets, cal, subsets, np.arange(len(cal.features)))
        thresholds = calibrate(nets, cal_scores, {e: codes_cal == positives[e] for e in emotions}, criterion)
        val_scores = scores(nets, val, subsets, np.arange(len(val.features)))
        aucs = {}
        for src in ("rafdb", "ckplus48"):
            m = src_val == src
            aucs[src] = {e: binary_metrics(nets[e].calibrate(val_scores[e][m]), codes_val[m] == positives[e], thresholds[e])["auc"] for e in emotions}
        if window.length not in clip_cache:
            clip_cache[window.length] = clip_windows(video.samples, window.length, window.hop)
        clips = clip_cache[window.length]
        dump: dict = {}
        vp = video_protocol(nets, thresholds, subsets, clips, pooling, dump if args.dump else None)
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            np.savez(Path(args.dump) / f"{name}.npz", emotions=np.array(list(nets)), thresholds=np.array([thresholds[e] for e in nets]), **{k.replace(".", "_"): a for k, a in dump.items()})
        vp["neutral_share"] = float(np.mean([c["share"].get("neutral", 0.0) for c in vp["clips"].values() if c["label"] == "neutral"] or [np.nan]))
        results[name] = {"variant": v, "base_variant": base_name, "video": vp, "rafdb_auc": aucs["rafdb"], "ckplus_auc": aucs["ckplus48"], "thresholds": thresholds, "fit_s": fit_s, "windows_s": t_win}
        log.info(
            "%s: clips %d/%d, mean recall %.3f, recall %s | RAF AUC %s | CK+ happy %.3f surprise %.3f | fit %.1fs",
            name, vp["clips_right"], vp["n_clips"], vp["mean_recall"], {k: round(x, 2) for k, x in vp["window_recall"].items()},
            {k: round(x, 3) for k, x in aucs["rafdb"].items() if x is not None}, aucs["ckplus48"]["happy"], aucs["ckplus48"]["surprise"], fit_s,
        )
        rr = vp["ratio_rule"]
        log.info("   ratio rule: clips %d, mean recall %.3f, recall %s", rr["clips_right"], rr["mean_recall"], {k: round(x, 2) for k, x in rr["window_recall"].items()})
        for c, r in vp["clips"].items():
            log.info("   %s (%s) -> %s %s", c, r["label"], r["vote"], {k: round(x, 2) for k, x in sorted(r["share"].items(), key=lambda kv: -kv[1])[:3]})
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
