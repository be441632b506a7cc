#!/usr/bin/env python3
"""Measure frame-to-frame landmark jitter on real videos, in normalised units.

The still-image training windows (realtime_fer.features.windows) repeat a photo T times with
Gaussian jitter; this measures how large that jitter is on real video. For each video, faces
are landmarked in VIDEO mode and normalised; the jitter of a landmark coordinate is its
deviation from a centred moving average over ``--span`` frames (which removes real, slower
movement), corrected for the averaging (x sqrt(span / (span - 1))). Printed: the median over
landmarks and coordinates of the per-video standard deviation, per video and overall.

    python tools/measure_jitter.py ../shared/data/video/mead/*.mp4 ../shared/data/video/pyfeat/single_face.mp4
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from realtime_fer.landmarks import FaceLandmarkDetector, LandmarkerOptions
from realtime_fer.landmarks.normalize import normalize_landmarks


def video_landmarks(path: str, max_frames: int) -> np.ndarray:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    with FaceLandmarkDetector(LandmarkerOptions(), running_mode="video") as det:
        i = 0
        while i < max_frames:
            ok, img = cap.read()
            if not ok:
                break
            faces = det.detect_for_video(img, int(i * 1000 / fps))
            frames.append(normalize_landmarks(faces[0].points) if faces else np.full((468, 3), np.nan, np.float32))
            i += 1
    cap.release()
    return np.stack(frames) if frames else np.zeros((0, 468, 3), np.float32)


def jitter(seq: np.ndarray, span: int) -> float:
    ok = np.isfinite(seq).all(axis=(1, 2))
    seq = seq[ok]
    if len(seq) < span + 2:
        return float("nan")
    kernel = np.ones(span) / span
    smooth = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 0, seq)
    half = span // 2
    resid = seq[half : half + len(smooth)] - smooth
    return float(np.median(resid.std(axis=0)) * np.sqrt(span / (span - 1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--span", type=int, default=5)
    ap.add_argument("--max-frames", type=int, default=300)
    args = ap.parse_args()
    values = []
    for v in args.videos:
        j = jitter(video_landmarks(v, args.max_frames), args.span)
        values.append(j)
        print(f"{v}: jitter {j:.5f}")
    print(f"median over {len(values)} videos: {np.nanmedian(values):.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
