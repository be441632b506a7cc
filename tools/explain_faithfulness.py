#!/usr/bin/env python3
"""Measure the live explanations: cancellation, faithfulness, plausibility and stability.

For every labelled folder (default: the shared MEAD clips and CK+48) and every emotion of the
bundle, the windows labelled with that emotion are explained for it the way the live stream
explains them (Integrated Gradients, 16 Gauss-Legendre steps), at the level the messages
show: named regions and blendshapes, against the baseline ``--baseline`` names:

* ``dataset``: the shipped mean neutral face and neutral blendshapes;
* ``person``: each window's baseline as the stream's ``person`` baseline gives it, each clip
  (or still image) played as one track, window after window (``track_neutral`` off);
* ``stream`` (default): the stream's own choice, ``track`` once the bundle has called one of
  the clip's windows neutral (unsmoothed probabilities), else ``person``; with
  ``--baseline-choice lowest`` (default, as the stream) each window's label is explained against
  whichever of the two its network scores lower, with ``first`` against ``track`` always.

As the stream does by default (``explain.visible_only``, ``explain.talking_baseline``), each
baseline is then moved along the directions its network cannot see to the window's own
position (``--visible``, default; ``--no-visible``: not moved) and set talking along them as
the window does (``--baseline-motion speech``, default; ``none``: held still; ``all``: the
window's whole motion, for comparison).

Reported per emotion:

* **cancellation**: median of (sum of the top-5 |weights|) / |sum of all| (issue 22's
  measure; 1 means the top 5 hold all of it with one sign), for regions + blendshapes and, for
  comparison, for single landmarks + blendshapes (schema 1's list);
* **faithfulness** (:mod:`realtime_fer.explain.faithfulness`): deletion and insertion curves of
  the top-k items against k random ones, infidelity;
* **plausibility** (:mod:`realtime_fer.explain.plausibility`): how often the top 3 name the
  emotion's FACS regions or blendshapes, with the chance level;
* **stability**: overlap of the top 3 of consecutive windows of one clip (video folders).

    python tools/explain_faithfulness.py [--data DIR ...] [--output runs/faithfulness.json]
        [--figures docs/images/faithfulness] [--max-windows 60] [--model BUNDLE]
        [--baseline stream|person|dataset] [--baseline-choice lowest|first] [--no-visible]
        [--baseline-motion speech|none|all]

Writes the JSON report and, with ``--figures``, one PNG of the deletion and insertion curves
per folder (``<prefix>_<folder>.png``); prints a table.
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
DATA = ROOT.parent / "shared" / "data"


def _windows(folder: Path, model, cache: Path):
    """(windows (N, T, 468, 3), blendshapes (N, T, B) or None, labels (N,), owner (N,), is_video)."""
    from realtime_fer.data.extract import default_options, extract_dataset
    from realtime_fer.data.windows import iter_window_chunks
    from realtime_fer.errors import DataError
    from realtime_fer.features.windows import WindowOptions

    opts = default_options()
    opts.find_faces = False  # the shipped recipe's extraction (its cache)
    opts.blendshapes = bool(model.blendshapes)
    res = extract_dataset(folder, cache, opts, progress=False, workers=1)
    samples = [s for s in res.samples if s.detected.any()]
    if not samples:
        raise DataError(f"no face found in any sample of {folder}")
    wins, blends, owners = [], [], []
    for chunk in iter_window_chunks(samples, WindowOptions(length=model.window_length, hop=model.hop), jitter=False, blendshapes=bool(model.blendshapes)):
        wins.append(chunk[0])
        owners.append(chunk[1])
        if model.blendshapes:
            blends.append(chunk[2])
    owner = np.concatenate(owners)
    labels = np.array([samples[i].ref.label for i in owner])
    is_video = any(s.n_frames > 1 for s in samples)
    return np.concatenate(wins), (np.concatenate(blends) if blends else None), labels, owner, is_video


def _pick(n: int, k: int) -> np.ndarray:
    return np.arange(n) if n <= k else np.unique(np.linspace(0, n - 1, k).round().astype(int))


def stream_baselines(model, windows: np.ndarray, blends: np.ndarray | None, owner: np.ndarray, kind: str,
                     labels: np.ndarray | None = None, choice: str = "lowest") -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Each window's baseline face (N, 468, 3), blendshapes (N, B) and kind (N,), each owner's
    windows played in order as one track of a :class:`StreamExplainer`; with ``labels``, the
    baseline its label is explained against (``baseline_choice``)."""
    from realtime_fer.explain.stream import StreamExplainer, StreamExplainOptions

    if kind == "dataset":
        opts = StreamExplainOptions(track_neutral=False, person_baseline=False)
    else:
        opts = StreamExplainOptions(track_neutral=kind == "stream", person_baseline=True, baseline_choice=choice)
    explainer = StreamExplainer(model, opts)
    nets = {e: model.network(e) for e in model.emotions}
    faces = np.empty((len(windows), *windows.shape[2:]), np.float32)
    bases_bs = None if blends is None else np.empty((len(windows), blends.shape[-1]), np.float32)
    kinds = np.empty(len(windows), object)
    for track, o in enumerate(np.unique(owner)):
        for i in np.nonzero(owner == o)[0]:
            inputs = {e: windows[i : i + 1][:, :, explainer.landmarks[e]] for e in model.emotions}
            xb = None if blends is None else blends[i : i + 1]
            top = str(model.decide({e: net.probability(inputs[e], xb) for e, net in nets.items()})[0])
            explainer.observe(track, top, inputs, 0, xb)
            face, bs, kinds[i] = explainer.baseline(track, None if labels is None else str(labels[i]))
            faces[i] = face
            if bases_bs is not None:
                bases_bs[i] = bs
    return faces, bases_bs, kinds


def measure_folder(folder: Path, model, cache: Path, max_windows: int, seed: int, baseline: str = "stream", motion: str = "none", visible: bool = False,
                   choice: str = "lowest") -> dict:
    from realtime_fer.explain.faithfulness import ItemModel, faithfulness
    from realtime_fer.explain.invisible import InvisibleSubspace
    from realtime_fer.explain.plausibility import plausibility, stability

    windows, blends, labels, owner, is_video = _windows(folder, model, cache)
    base_faces, base_bs, base_kinds = stream_baselines(model, windows, blends, owner, baseline, labels, choice)
    out: dict = {"path": str(folder), "n_windows": int(len(windows)), "emotions": {}}
    for emotion, entry in model.emotions.items():
        rows = np.nonzero(labels == emotion)[0]
        if not len(rows):
            continue
        lms = np.asarray(entry.landmarks)
        items = ItemModel(model.network(emotion), lms, model.blendshapes or ())
        x = np.ascontiguousarray(windows[rows][:, :, lms])
        base = np.ascontiguousarray(np.broadcast_to(base_faces[rows][:, None][:, :, lms], x.shape))
        xb = None if blends is None else blends[rows]
        bb = None if xb is None else np.ascontiguousarray(np.broadcast_to(base_bs[rows][:, None], xb.shape))
        if motion == "all":  # the baseline moves as the window does, around the resting face
            base = np.ascontiguousarray(base + (x - x.mean(axis=1, keepdims=True)))
            if xb is not None:
                bb = np.ascontiguousarray(bb + (xb - xb.mean(axis=1, keepdims=True)))
        inv = InvisibleSubspace(items.net) if (visible or motion == "speech") else None
        if motion == "speech" and inv is not None and inv.rank:  # ... along the directions its network cannot see (talking)
            base = np.ascontiguousarray(base + inv.motion(x))
        if visible and inv is not None:  # move the baseline along the directions the network cannot see
            base, bb = inv.shift(x, base, xb, bb)
            base = np.ascontiguousarray(base)
            bb = None if bb is None else np.ascontiguousarray(bb)
        attr = items.attribute(x, base, xb, bb)
        total = attr.weights.sum(axis=1)
        top5 = np.sort(np.abs(attr.weights), axis=1)[:, -5:].sum(axis=1)
        # schema 1's list: single landmarks and blendshapes
        raw = items.engine.attribute(x, base, **({} if xb is None else {"blendshapes": xb, "blendshape_baselines": bb}))
        per_lm = raw.per_landmark()
        singles = per_lm if raw.blendshapes is None else np.concatenate([per_lm, raw.per_blendshape()], axis=1)
        top5_lm = np.sort(np.abs(singles), axis=1)[:, -5:].sum(axis=1)
        names = attr.top_names(5)
        item_names = [next(iter(l.values())) for l in attr.labels]
        runs = [[names[j] for j in np.nonzero(owner[rows] == o)[0]] for o in np.unique(owner[rows])] if is_video else []
        pick = _pick(len(rows), max_windows)
        faith = faithfulness(items, x[pick], base[pick], None if xb is None else xb[pick], None if bb is None else bb[pick], seed=seed)
        common: dict[str, int] = {}
        for t in names:
            for n in t[:3]:
                common[n] = common.get(n, 0) + 1
        kinds, counts = np.unique(base_kinds[rows].astype(str), return_counts=True)
        out["emotions"][emotion] = {
            "n_windows": int(len(rows)),
            "baselines": {str(k): int(c) for k, c in zip(kinds, counts)},
            "cancellation": {
                "median_top5_over_sum_regions": float(np.median(top5 / np.maximum(np.abs(total), 1e-9))),
                "median_top5_over_sum_landmarks": float(np.median(top5_lm / np.maximum(np.abs(total), 1e-9))),
                "median_sum": float(np.median(total)),
                "median_output": float(np.median(attr.output)),
                "median_baseline_output": float(np.median(attr.baseline_output)),
            },
            "plausibility": plausibility(emotion, names, item_names),
            "stability": stability(runs),
            "top3_most_named": dict(sorted(common.items(), key=lambda kv: -kv[1])[:6]),
            "faithfulness": faith,
        }
        logging.info("%s %s: %d windows", folder.name, emotion, len(rows))
    return out


def plot(report: dict, prefix: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, folder in report["folders"].items():
        emotions = [e for e, r in folder["emotions"].items()]
        fig, axes = plt.subplots(2, len(emotions), figsize=(2.6 * len(emotions), 5.2), squeeze=False)
        for j, e in enumerate(emotions):
            f = folder["emotions"][e]["faithfulness"]
            ax = axes[0, j]
            ax.plot(f["ks"], f["deletion"]["top"], "o-", color="tab:red", label="top-k")
            ax.plot(f["ks"], f["deletion"]["random"], "o--", color="tab:grey", label="random k")
            ax.set_title(f"{e} (n={f['n_windows']})", fontsize=9)
            ax.set_xlabel("items deleted", fontsize=8)
            if j == 0:
                ax.set_ylabel("deletion: mean |output change|\n(logit)", fontsize=8)
                ax.legend(fontsize=7)
            ax = axes[1, j]
            ax.plot(f["ks"], f["insertion"]["top"], "o-", color="tab:blue", label="top-k")
            ax.plot(f["ks"], f["insertion"]["random"], "o--", color="tab:grey", label="random k")
            ax.set_xlabel("items inserted", fontsize=8)
            if j == 0:
                ax.set_ylabel("insertion: remaining gap\n|F(x)-F(b+k)| / |F(x)-F(b)|", fontsize=8)
                ax.legend(fontsize=7)
            for a in axes[:, j]:
                a.tick_params(labelsize=7)
        fig.suptitle(f"{name}: regions and blendshapes replaced by the neutral baseline (top-k by |IG weight| vs random)", fontsize=9)
        fig.tight_layout()
        path = prefix.parent / f"{prefix.name}_{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", type=Path, default=[DATA / "video" / "mead", DATA / "ckplus48"], help="labelled folders (default: the shared MEAD clips and CK+48)")
    ap.add_argument("--model", default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--output", type=Path, default=ROOT / "runs" / "faithfulness.json")
    ap.add_argument("--figures", type=Path, default=None, help="PNG prefix for the curves, e.g. docs/images/faithfulness")
    ap.add_argument("--cache", type=Path, default=ROOT / ".fer_cache")
    ap.add_argument("--max-windows", type=int, default=60, help="windows per emotion and folder in the deletion/insertion/infidelity measures (evenly spaced)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", choices=("stream", "person", "dataset"), default="stream", help="the windows' baselines (see above)")
    ap.add_argument("--baseline-choice", choices=("lowest", "first"), default="lowest",
                    help="with --baseline stream: per explained emotion, the lower-scored of the track's neutral window and the person baseline (the stream's default), or the neutral window always")
    ap.add_argument("--baseline-motion", choices=("none", "all", "speech"), default="speech",
                    help="the baseline window moves as the explained window does (its frames minus their mean, around the baseline face): all of its motion, or its motion along the directions the network cannot see")
    ap.add_argument("--visible", action=argparse.BooleanOptionalAction, default=True,
                    help="move each baseline along the directions its network cannot see (realtime_fer.explain.invisible), as the stream does (default)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from realtime_fer.errors import FerError
    from realtime_fer.models.bundle import load_bundle

    if args.max_windows < 1:
        print("error: --max-windows must be >= 1", file=sys.stderr)
        return 2
    try:
        missing = [str(d) for d in args.data if not d.is_dir()]
        if missing:
            raise FerError(f"not a folder: {', '.join(missing)}")
        t0 = time.perf_counter()
        model = load_bundle(args.model)
        report = {"model": str(model.path), "baseline": args.baseline, "baseline_choice": args.baseline_choice, "baseline_motion": args.baseline_motion, "visible": args.visible, "n_steps": 16, "folders": {}}
        for folder in args.data:
            report["folders"][folder.name] = measure_folder(folder, model, args.cache, args.max_windows, args.seed, args.baseline, args.baseline_motion, args.visible, args.baseline_choice)
        report["seconds"] = round(time.perf_counter() - t0, 1)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"{'folder':10s} {'emotion':9s} {'n':>5s} {'top5/sum reg':>12s} {'(landmarks)':>11s} {'del@3 top':>9s} {'rand':>6s} {'wins':>5s} {'infid':>6s} {'corr':>5s} {'FACS any':>8s} {'chance':>6s} {'stab J':>6s}  top 3 most named")
    for name, folder in report["folders"].items():
        for e, r in folder["emotions"].items():
            f, c, p, s = r["faithfulness"], r["cancellation"], r["plausibility"], r["stability"]
            k3 = f["ks"].index(3) if 3 in f["ks"] else 0
            fmt = lambda v: "   -" if v is None else f"{v:.2f}"
            print(f"{name:10s} {e:9s} {r['n_windows']:5d} {c['median_top5_over_sum_regions']:12.2f} {c['median_top5_over_sum_landmarks']:11.2f} "
                  f"{f['deletion']['top'][k3]:9.2f} {f['deletion']['random'][k3]:6.2f} {f['deletion']['top_beats_random'][k3]:5.2f} "
                  f"{f['infidelity']['relative']:6.2f} {f['infidelity']['correlation']:5.2f} {fmt(p['any']):>8s} {fmt(p['chance_any']):>6s} {fmt(s['jaccard']):>6s}  "
                  + ", ".join(list(r["top3_most_named"])[:3]) + "  [" + ", ".join(f"{k} {v}" for k, v in r["baselines"].items()) + "]")
    print(f"-> {args.output} ({report['seconds']} s)")
    if args.figures is not None:
        for path in plot(report, args.figures):
            print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
