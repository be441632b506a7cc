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
    neutral = [s for s in res.samples if s.ref.label == "neutral" and s.detected.any()]
    if not neutral:
        print(f"error: no neutral face in {args.data}", file=sys.stderr)
        return 2
    if args.blendshapes:
        rows, what, out = [s.blendshapes[s.detected] for s in neutral], "mean blendshapes", args.blendshapes_output
    else:
        rows, what, out = [normalized_frames(s)[0][s.detected] for s in neutral], "mean", args.output
    np.save(out, np.concatenate(rows).mean(axis=0).astype(np.float32))
    print(f"{what} of {sum(len(r) for r in rows)} neutral faces -> {out}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
