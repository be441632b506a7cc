"""Measure speech-subspace projection: remove the directions along which talking moves a face.

A talking face's window has its mouth open on average, so its *mean* shape leans along the
directions in which speech moves the face (jaw, lips), and a model trained on photos reads that
lean as an expression. This tool learns those directions from real talking clips (the principal
components of each clip's frames around its own mean face, the motion bank of
``data.motion``), projects them out of the pooled ``mean`` part of every window before
fitting and folds the projection into the networks (``model.speech_subspace``, as ``train``
does; the config's own rank is replaced by each variant's), and measures, per number of directions
removed, the video protocol on held-out labelled clips (MEAD by default: clips right, mean
per-class window recall, neutral share of the neutral clip; smoothed as the stream smooths)
beside RAF-DB and CK+ validation AUCs. Everything else is the training config's recipe, run
through the trainer's own ``prepare`` / ``fit_and_validate``.

    python tools/speech_subspace.py --ranks 0,4,8,16 --seeds 0,1,2 --output runs/subspace.json
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
from realtime_fer.data.motion import MotionBank  # noqa: E402
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS  # noqa: E402
from realtime_fer.models.bundle import decide  # noqa: E402
from realtime_fer.models.speech_subspace import SpeechSubspace, SpeechSubspaceOptions  # noqa: E402
from realtime_fer.models.smoothing import SmoothingOptions, smooth_sequence  # noqa: E402
from realtime_fer.training.config import load_train_config  # noqa: E402
from realtime_fer.training.features import pooled_set  # noqa: E402
from realtime_fer.training.fitting import scores  # noqa: E402
from realtime_fer.training.trainer import default_subsets, extraction_options, fit_and_validate, prepare, talking_bank  # noqa: E402

log = logging.getLogger("speech_subspace")


def subspace_of(bank: MotionBank, rank: int, blend_rank: int) -> SpeechSubspace | None:
    """The trainer's speech subspace of ``bank`` with these ranks (None: nothing removed)."""
    opts = SpeechSubspaceOptions(rank=rank, blendshape_rank=blend_rank)
    return SpeechSubspace.from_bank(bank, opts) if opts.enabled else None


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def prior_rules(sm: dict, thresholds: dict, priors: dict) -> dict[str, np.ndarray]:
    """Alternative decisions on smoothed probabilities: each emotion's log-odds with its
    calibration-set prior odds replaced by a uniform prior (1 / number of models): ``argmax``
    (no threshold) and ``thresholded`` (the thresholds shifted the same way, else neutral)."""
    names = list(sm)
    u = 1.0 / len(names)
    shift = np.array([_logit(u) - _logit(priors[e]) for e in names])
    lo = np.stack([_logit(sm[e]) for e in names], axis=1) + shift[None]
    thr = np.array([_logit(thresholds[e]) for e in names]) + shift
    arg = np.array(names)[lo.argmax(axis=1)]
    above = lo >= thr[None]
    pick = np.where(above, lo, -np.inf).argmax(axis=1)
    return {"argmax": arg, "thresholded": np.array(names + ["neutral"])[np.where(above.any(axis=1), pick, len(names))]}


def clip_protocol(nets, thresholds, subsets, clips, owner, fps, hop, smoothing: SmoothingOptions, priors: dict | None = None) -> dict:
    """Window recall per emotion, its mean, clips right and the neutral clip's neutral share."""
    hits: dict[str, list[int]] = {}
    alt_hits: dict[str, dict[str, list[int]]] = {}
    alt_votes: dict[str, dict[str, bool]] = {}
    per_clip = {}
    sc = scores(nets, clips, subsets, np.arange(len(clips.features)))
    for i, (name, label) in enumerate(zip(owner["names"], owner["labels"])):
        rows = np.flatnonzero(clips.owner == i)
        if not len(rows):
            continue
        p = {e: nets[e].calibrate(sc[e][rows]) for e in nets}
        t = np.arange(len(rows)) * hop / fps[i]
        sm = smooth_sequence(p, t, smoothing)
        tops = decide(sm, thresholds)
        if priors is not None:
            for rule, t_alt in prior_rules(sm, thresholds, priors).items():
                h = alt_hits.setdefault(rule, {}).setdefault(label, [0, 0])
                h[0] += int(np.sum(t_alt == label))
                h[1] += len(t_alt)
                la, ca = np.unique(t_alt, return_counts=True)
                alt_votes.setdefault(rule, {})[name] = str(la[np.argmax(ca)]) == label
        labels, counts = np.unique(tops, return_counts=True)
        vote = str(labels[np.argmax(counts)])
        per_clip[name] = {"label": label, "vote": vote, "share": {str(a): round(float(c / len(tops)), 3) for a, c in zip(labels, counts)},
                          "mean_over_threshold": {e: round(float(np.mean(sm[e]) / thresholds[e]), 3) for e in sm}}
        h = hits.setdefault(label, [0, 0])
        h[0] += int(np.sum(tops == label))
        h[1] += len(tops)
    recall = {k: v[0] / v[1] for k, v in hits.items()}
    alt = {rule: {"clips_right": int(sum(alt_votes[rule].values())), "mean_recall": float(np.mean([v[0] / v[1] for v in per.values()])),
                  "window_recall": {k: round(v[0] / v[1], 3) for k, v in per.items()}} for rule, per in alt_hits.items()}
    return {
        "prior_rules": alt,
        "clips_right": sum(c["vote"] == c["label"] for c in per_clip.values()),
        "n_clips": len(per_clip),
        "mean_recall": float(np.mean(list(recall.values()))),
        "window_recall": recall,
        "neutral_share": float(np.mean([c["share"].get("neutral", 0.0) for c in per_clip.values() if c["label"] == "neutral"] or [np.nan])),
        "clips": per_clip,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/train_default.yaml"))
    ap.add_argument("--video", default=str(ROOT.parent / "shared/data/video/mead"), help="held-out labelled clips")
    ap.add_argument("--ranks", default="0,2,4,8,16", help="comma-separated numbers of landmark directions removed")
    ap.add_argument("--blend-ranks", default="0", help="comma-separated numbers of blendshape directions removed (each combined with every rank)")
    ap.add_argument("--seeds", default="0", help="comma-separated seed offsets (random layers and motion sampling)")
    ap.add_argument("--frame-rank", type=int, default=0, help="also project this many directions off every frame before pooling (mean and std parts alike)")
    ap.add_argument("--output", default="runs/subspace.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    smoothing = SmoothingOptions()
    results: dict = {}
    base_cfg = load_train_config(args.config)
    video = extract_dataset(args.video, base_cfg.data.cache_dir, extraction_options(base_cfg), progress=False)
    vsamples = [s for s in video.samples if s.detected.any()]
    owner = {"names": [s.ref.path.name for s in vsamples], "labels": [s.ref.label for s in vsamples]}
    fps = [s.fps or 25.0 for s in vsamples]
    # the variants set the subspace themselves: the config's own is not applied on top
    base_cfg = dataclasses.replace(base_cfg, model=dataclasses.replace(base_cfg.model, speech_subspace=SpeechSubspaceOptions()))
    bank = talking_bank(base_cfg, base_cfg.data.motion.sources)
    full_mesh = list(range(NUM_MESH_LANDMARKS))
    log.info("motion variance explained by 2/4/8/16 directions: %s", [round(subspace_of(bank, k, 0).landmark_basis(full_mesh)[1], 3) for k in (2, 4, 8, 16)])
    if args.frame_rank:
        import realtime_fer.training.features as features_module

        uf = subspace_of(bank, args.frame_rank, 0).landmark_basis(full_mesh)[0].astype(np.float32)
        raw_pool = features_module.pool

        def frame_projected_pool(windows, pooling, dtype=np.float32, blendshapes=None):
            w = np.asarray(windows, np.float32)
            flat = w.reshape(w.shape[0], w.shape[1], -1)
            flat = flat - (flat @ uf) @ uf.T
            return raw_pool(flat.reshape(w.shape), pooling, dtype, blendshapes)

        features_module.pool = frame_projected_pool
    for sd in [int(s) for s in args.seeds.split(",")]:
        cfg = dataclasses.replace(base_cfg, seed=base_cfg.seed + sd, model=dataclasses.replace(base_cfg.model, randomized=dataclasses.replace(base_cfg.model.randomized, seed=base_cfg.model.randomized.seed + sd)))
        t0 = time.perf_counter()
        prep = prepare(cfg, progress=False)
        pooling = tuple(cfg.model.pooling)
        clips = pooled_set(vsamples, cfg.window, pooling, jitter=False, blendshapes=cfg.model.blendshapes)
        log.info("seed %d: windows in %.1f s", sd, time.perf_counter() - t0)
        subsets = default_subsets(cfg, prep.emotions)
        for k in [int(r) for r in args.ranks.split(",")]:
            for kb in [int(r) for r in args.blend_ranks.split(",")]:
                # projected off before fitting and folded into the networks, as `train` does
                fit = fit_and_validate(cfg, dataclasses.replace(prep, subspace=subspace_of(bank, k, kb)), subsets)
                cal_codes = prep.codes_plain[prep.cal_rows]
                priors = {e: float(np.mean(cal_codes == prep.positives[e])) for e in fit.nets}
                vp = clip_protocol(fit.nets, fit.thresholds, subsets, clips, owner, fps, cfg.window.hop, smoothing, priors)
                for rule, r in vp["prior_rules"].items():
                    log.info("   rule %s: clips %d, mean recall %.3f, recall %s", rule, r["clips_right"], r["mean_recall"], r["window_recall"])
                raf = {e: round(m["auc"], 4) for e, m in fit.by_source["rafdb"]["emotions"].items() if m["auc"] is not None}
                ck = {e: round(m["auc"], 4) for e, m in fit.by_source["ckplus48"]["emotions"].items() if m["auc"] is not None}
                name = f"k{k}_b{kb}" + (f"_f{args.frame_rank}" if args.frame_rank else "") + f"@s{sd}"
                results[name] = {"rank": k, "blend_rank": kb, "frame_rank": args.frame_rank, "seed": sd, "video": vp, "rafdb_auc": raf, "ckplus_auc": ck, "fit_s": fit.fit_seconds}
                log.info("%s: clips %d/%d, mean recall %.3f, neutral %.2f, recall %s | RAF %s | CK+ happy %.3f surprise %.3f",
                         name, vp["clips_right"], vp["n_clips"], vp["mean_recall"], vp["neutral_share"], {e: round(r, 2) for e, r in vp["window_recall"].items()},
                         raf, ck.get("happy", float("nan")), ck.get("surprise", float("nan")))
                for c, r in vp["clips"].items():
                    log.info("   %s (%s) -> %s %s", c, r["label"], r["vote"], dict(sorted(r["share"].items(), key=lambda kv: -kv[1])[:3]))
                Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
