"""What the derived descriptions (action units, valence/arousal) say on real clips, and what
they cost per face.

For each clip, the real recognizer (``realtime-fer analyze``'s path, shipped default model)
publishes its predictions; the script prints per clip the mean valence and arousal, the share
of predictions with valence > 0, the tops, and the mean of a few action units. Then it times
:func:`~realtime_fer.describe.action_units` and :func:`~realtime_fer.describe.valence_arousal`
on every prediction's own blendshapes and smoothed probabilities (the work the frame processor
adds per scored face) and the msgpack encoding of the predictions with and without the three
new fields, median of ``--repeat`` passes, in microseconds per face.

    python tools/bench_describe.py [CLIP ...]   (default: MEAD happy and sad, a furious talk)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.describe import action_units, valence_arousal  # noqa: E402
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES  # noqa: E402
from realtime_fer.pipeline import ListSink  # noqa: E402
from realtime_fer.pipeline.config import RuntimeConfig  # noqa: E402
from realtime_fer.pipeline.recognizer import open_recognizer  # noqa: E402
from realtime_fer.publish import Prediction, encode  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "video"
DEFAULT_CLIPS = [VIDEO / "mead" / "happy.mp4", VIDEO / "mead" / "sad.mp4", VIDEO / "talking" / "furious_talk1_clip1.mp4"]
SHOWN_AUS = ("AU1", "AU4", "AU6", "AU7", "AU12", "AU15", "AU26")


def predictions(path: Path, model: str | None) -> list[Prediction]:
    sink = ListSink()
    open_recognizer(str(path), RuntimeConfig(model=model, device="cpu"), [sink]).run()
    return [m for m in sink.messages if isinstance(m, Prediction)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    ap.add_argument("--model", help="model bundle (default: the shipped one)")
    ap.add_argument("--repeat", type=int, default=20, help="timing passes over all predictions")
    args = ap.parse_args(argv)

    pooled: list[Prediction] = []
    print(f"{'clip':28s} {'n':>4s} {'V mean':>7s} {'V>0':>5s} {'A mean':>7s}  " + " ".join(f"{k:>5s}" for k in SHOWN_AUS) + "  tops")
    for clip in args.clips:
        preds = predictions(clip, args.model)
        if not preds:
            print(f"{clip.name:28s} no predictions")
            continue
        pooled += preds
        v = np.array([p.valence for p in preds])
        a = np.array([p.arousal for p in preds])
        aus = [np.mean([p.action_units[k] for p in preds if p.action_units]) for k in SHOWN_AUS]
        tops: dict[str, int] = {}
        for p in preds:
            tops[p.top] = tops.get(p.top, 0) + 1
        print(f"{clip.name:28s} {len(preds):4d} {v.mean():+7.3f} {np.mean(v > 0):5.2f} {a.mean():+7.3f}  " + " ".join(f"{x:5.2f}" for x in aus) + f"  {tops}")

    blends = [np.array([p.blendshapes[n] for n in BLENDSHAPE_NAMES], np.float32) for p in pooled if p.blendshapes]
    smoothed = [p.smoothed or p.probabilities for p in pooled]
    without = [replace(p, action_units=None, valence=None, arousal=None) for p in pooled]
    cases = (
        ("action_units", action_units, blends),
        ("valence_arousal", valence_arousal, smoothed),
        ("encode (with)", encode, pooled),
        ("encode (without)", encode, without),
    )
    for name, fn, inputs in cases:
        passes = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for x in inputs:
                fn(x)
            passes.append((time.perf_counter() - t0) / len(inputs))
        print(f"{name:16s} {1e6 * float(np.median(passes)):6.2f} us per face (median of {args.repeat} passes over {len(inputs)} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
