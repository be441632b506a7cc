"""What smoothing the published probabilities costs and buys, on real clips.

For each time constant ``tau`` (and no smoothing), on the labelled clips of ``--data``:

* **flicker**: changes of the published ``top`` per second of each clip (a talking face should
  not jump between emotions);
* **windows right**: the share of all windows published as their clip's label (pooled over
  clips, not the protocol's mean per-class recall);
* **decision latency**: the clips of one person are played back to back (by default MEAD's
  ``neutral.mp4`` then ``happy.mp4``, the same man), and the delay from the switch to the first
  window from which ``top`` is (in at least 90 % of the windows after it) the second clip's
  label is reported, in seconds; with no smoothing this is the time to fill a window.

    python tools/bench_smoothing.py --data ../shared/data/video/mead [--model BUNDLE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.data._worker import FALLBACK_FPS  # noqa: E402
from realtime_fer.data.extract import extract_dataset, with_blendshapes  # noqa: E402
from realtime_fer.data.windows import video_windows  # noqa: E402
from realtime_fer.features.windows import WindowOptions  # noqa: E402
from realtime_fer.models.bundle import decide, load_bundle  # noqa: E402
from realtime_fer.models.scorer import BundleScorer  # noqa: E402
from realtime_fer.models.smoothing import SmoothingOptions, smooth_sequence  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/video/mead"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--cache", default=".fer_cache")
    ap.add_argument("--taus", default="0,0.25,0.5,1.0", help="time constants in seconds (0: no smoothing)")
    ap.add_argument("--switch", default="neutral.mp4,happy.mp4", help="two clips of one person, played back to back")
    ap.add_argument("--output", default=None, help="JSON report")
    args = ap.parse_args(argv)

    bundle = load_bundle(args.model)
    scorer = BundleScorer(bundle, "cpu")
    window = WindowOptions(length=bundle.window_length, hop=bundle.hop)
    blend = bool(bundle.blendshapes)
    res = extract_dataset(args.data, args.cache, with_blendshapes(None, blend), progress=False)
    clips = {}
    for s in res.samples:
        wins, ends, *rest = video_windows(s, window, blendshapes=blend)
        if len(wins):
            fps = s.fps or FALLBACK_FPS
            p = scorer.predict(wins, rest[0] if rest else None)
            clips[s.ref.path.name] = (s.ref.label, p, ends / fps, len(s.landmarks) / fps)
    first, second = args.switch.split(",")
    report = {}
    print(f"model {bundle.path.name}: window {bundle.window_length} frames, hop {bundle.hop}")
    print(f"{'tau s':>6} {'flicker /s':>11} {'windows right':>14} {'latency s':>10}")
    for tau in (float(t) for t in args.taus.split(",")):
        opts = SmoothingOptions(method="none") if tau == 0 else SmoothingOptions(time_constant_s=tau)
        flicker, hits, total = [], 0, 0
        for label, p, t, dur in clips.values():
            top = decide(smooth_sequence(p, t, opts), bundle.thresholds)
            flicker.append(np.sum(top[1:] != top[:-1]) / dur)
            hits += int(np.sum(top == label))
            total += len(top)
        latency = None
        if first in clips and second in clips:
            (_, p1, t1, d1), (label2, p2, t2, _) = clips[first], clips[second]
            p = {e: np.concatenate([p1[e], p2[e]]) for e in p1}
            t = np.concatenate([t1, t2 + d1])
            top = decide(smooth_sequence(p, t, opts), bundle.thresholds)
            k0 = len(t1)
            ok = top[k0:] == label2
            stays = [k for k in range(len(ok)) if ok[k:].mean() >= 0.9]  # from here on, mostly the new label
            latency = float(t[k0 + stays[0]] - d1) if stays else None  # from the switch: includes filling the window
        report[tau] = {"flicker_per_s": float(np.mean(flicker)), "windows_right": hits / total, "latency_s": latency}
        lat = "-" if latency is None else f"{latency:.2f}"
        print(f"{tau:>6.2f} {np.mean(flicker):>11.2f} {hits / total:>14.3f} {lat:>10}")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
