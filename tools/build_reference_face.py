#!/usr/bin/env python3
"""Build ``realtime_fer/assets/reference_face.npy``: the generalised-Procrustes mean face.

Runs MediaPipe Face Landmarker over real faces (default: all CK+48 images), aligns them
iteratively to their mean on the rigid anchor landmarks, and writes the mean (468x3), centred
on the anchors and scaled to unit anchor RMS radius.

    python tools/build_reference_face.py --data ../shared/data/ckplus48
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from realtime_fer.landmarks import FaceLandmarkDetector, LandmarkerOptions
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, normalize_landmarks


def _unit(ref: np.ndarray) -> np.ndarray:
    ref = ref - ref[ANCHOR_INDEX].mean(axis=0)
    return ref / np.sqrt((ref[ANCHOR_INDEX] ** 2).sum(axis=1).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/ckplus48")
    ap.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "realtime_fer/assets/reference_face.npy"))
    args = ap.parse_args()
    files = sorted(p for p in Path(args.data).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        print(f"no images under {args.data}", file=sys.stderr)
        return 2
    faces = []
    with FaceLandmarkDetector(LandmarkerOptions(pad_fraction=0.25)) as det:
        for f in files:
            found = det.detect(cv2.imread(str(f)))
            if found:
                faces.append(found[0].points[:468].astype(np.float64))
    pts = np.stack(faces)
    ref = _unit(pts[0].copy())
    for it in range(10):
        aligned = normalize_landmarks(pts, reference=ref).astype(np.float64)
        new = _unit(aligned.mean(axis=0))
        delta = float(np.abs(new - ref).max())
        ref = new
        if delta < 1e-6:
            break
    np.save(args.output, ref.astype(np.float32))
    print(f"reference face from {len(faces)} of {len(files)} images, {it + 1} iterations -> {args.output}")
    mirror = mirror_map(ref)
    mpath = Path(args.output).with_name("mirror_index.npy")
    np.save(mpath, mirror)
    print(f"mirror map: {int((mirror == np.arange(len(mirror))).sum())} midline points, involution={bool((mirror[mirror] == np.arange(len(mirror))).all())} -> {mpath}")
    return 0


def mirror_map(ref: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Left/right correspondence of the mesh: reflect the reference face, align the reflection
    to the face (similarity fit on nearest-neighbour correspondences, iterated), and map every
    landmark to its nearest neighbour in the aligned reflection."""
    from realtime_fer.landmarks.normalize import similarity_fit

    m = ref.astype(np.float64).copy()
    m[:, 0] = -m[:, 0]
    for _ in range(iterations):
        nearest = np.linalg.norm(ref[:, None, :] - m[None, :, :], axis=2).argmin(axis=0)
        r, s, t = similarity_fit(m, ref[nearest])
        m = s * m @ r + t
    mapping = np.linalg.norm(ref[:, None, :] - m[None, :, :], axis=2).argmin(axis=0)
    if not (mapping[mapping] == np.arange(len(mapping))).all():
        raise SystemExit("mirror map is not an involution; the reference face is not symmetric enough")
    return mapping.astype(np.int16)


if __name__ == "__main__":
    sys.exit(main())
