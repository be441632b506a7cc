#!/usr/bin/env python3
"""Build ``realtime_fer/assets/neutral_face.npy``: the mean normalised neutral face (and, with
``--blendshapes``, ``neutral_blendshapes.npy``: the mean blendshape scores of the same faces).

The fallback *neutral baseline* of Integrated Gradients (``realtime_fer.explain.baselines``)
for data that holds no neutral faces (CK+48 has none): the mean, in normalised coordinates,
of the neutral faces of a labelled dataset (default: RAF-DB train, 2,524 neutral images).

    python tools/build_neutral_face.py --data ../shared/data/rafdb/train [--blendshapes]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/rafdb/train"), help="labelled folder with a neutral label")
    ap.add_argument("--cache", default=str(ROOT / ".fer_cache"))
    ap.add_argument("--output", default=str(ROOT / "realtime_fer/assets/neutral_face.npy"))
    ap.add_argument("--blendshapes", action="store_true", help="write the neutral faces' mean blendshapes instead (the IG baseline of models that read them)")
    ap.add_argument("--blendshapes-output", default=str(ROOT / "realtime_fer/assets/neutral_blendshapes.npy"))
    args = ap.parse_args()

    from realtime_fer.data.extract import default_options, extract_dataset
    from realtime_fer.data.windows import normalized_frames

    options = default_options()
    options.blendshapes = args.blendshapes
    res = extract_dataset(args.data, args.cache, options, progress=sys.stderr.isatty())
    if args.blendshapes:
        rows = [s.blendshapes[s.detected] for s in res.samples if s.ref.label == "neutral" and s.detected.any()]
        if not rows:
            print(f"error: no neutral face in {args.data}", file=sys.stderr)
            return 2
        mean = np.concatenate(rows).mean(axis=0).astype(np.float32)
        np.save(args.blendshapes_output, mean)
        print(f"mean blendshapes of {sum(len(r) for r in rows)} neutral faces -> {args.blendshapes_output}")
        return 0
    frames = []
    for s in res.samples:
        if s.ref.label == "neutral" and s.detected.any():
            f, det = normalized_frames(s)
            frames.append(f[det])
    if not frames:
        print(f"error: no neutral face in {args.data}", file=sys.stderr)
        return 2
    face = np.concatenate(frames).mean(axis=0).astype(np.float32)
    np.save(args.output, face)
    print(f"mean of {sum(len(f) for f in frames)} neutral faces -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
