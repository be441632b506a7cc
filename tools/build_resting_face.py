#!/usr/bin/env python3
"""Build ``realtime_fer/assets/resting_face.npz``: what the stream needs to predict a person's
resting face from the shape of their face (the ``person`` baseline of the live explanations,
:mod:`realtime_fer.explain.resting`).

From the normalised faces of a labelled dataset (default: RAF-DB train, 11,893 faces with a
detection, 2,524 of them neutral), it stores

* ``mean`` (468, 3): the mean neutral face (as ``neutral_face.npy``);
* ``components`` (K, 1404) and ``variances`` (K,): the leading principal components of the
  neutral faces (how people's resting faces differ), with ``residual`` (1404,): the variance
  of each coordinate the components leave out. Together a low-rank covariance of resting faces,
  from which the stream fits, for any bundle's landmarks, the regression "resting face given
  the stable landmarks";
* ``stability`` (468,): for each landmark, how much the labels' mean faces differ (expression)
  relative to how much neutral faces differ (identity): low = a landmark expressions hardly move.

    python tools/build_resting_face.py [--data ../shared/data/rafdb/train] [--components 128]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def resting_face_statistics(faces: np.ndarray, labels: np.ndarray, n_components: int) -> dict[str, np.ndarray]:
    """The arrays of ``resting_face.npz`` from (N, 468, 3) normalised faces and their labels."""
    f = np.asarray(faces, np.float64)
    lab = np.asarray(labels).astype(str)
    neutral = f[lab == "neutral"]
    if len(neutral) < n_components + 2:
        raise ValueError(f"{len(neutral)} neutral faces: too few for {n_components} components")
    flat = neutral.reshape(len(neutral), -1)
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2 / (len(flat) - 1)
    comps = vt[:n_components]
    residual = np.maximum(centred.var(axis=0, ddof=1) - (comps**2 * var[:n_components, None]).sum(axis=0), 1e-12)
    classes = np.unique(lab)
    means = np.stack([f[lab == c].mean(axis=0) for c in classes])
    counts = np.array([(lab == c).sum() for c in classes], np.float64)
    grand = (means * counts[:, None, None]).sum(axis=0) / counts.sum()
    expression = (((means - grand) ** 2) * counts[:, None, None]).sum(axis=0).sum(axis=-1) / counts.sum()
    identity = neutral.var(axis=0).sum(axis=-1)
    return {
        "mean": mean.reshape(-1, 3).astype(np.float32),
        "components": comps.astype(np.float32),
        "variances": var[:n_components].astype(np.float32),
        "residual": residual.astype(np.float32),
        "stability": (expression / np.maximum(identity, 1e-12)).astype(np.float32),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/rafdb/train"), help="labelled folder with a neutral label and other labels")
    ap.add_argument("--cache", default=str(ROOT / ".fer_cache"))
    ap.add_argument("--components", type=int, default=128)
    ap.add_argument("--output", default=str(ROOT / "realtime_fer/assets/resting_face.npz"))
    args = ap.parse_args()

    from realtime_fer.data.extract import default_options, extract_dataset
    from realtime_fer.data.windows import normalized_frames
    from realtime_fer.errors import FerError

    if args.components < 1:
        print("error: --components must be >= 1", file=sys.stderr)
        return 2
    try:
        options = default_options()
        options.find_faces = False
        res = extract_dataset(args.data, args.cache, options, progress=sys.stderr.isatty())
        samples = [s for s in res.samples if s.detected.any()]
        faces = np.stack([normalized_frames(s)[0][s.detected][0] for s in samples])
        labels = np.array([s.ref.label for s in samples])
        stats = resting_face_statistics(faces, labels, args.components)
    except (FerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    np.savez(args.output, **stats)
    print(f"{len(faces)} faces ({int((labels == 'neutral').sum())} neutral), {args.components} components -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
