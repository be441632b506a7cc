#!/usr/bin/env python3
"""Does decoding in a capture thread slow the Face Landmarker down? (an issue-3 investigation)

    python tools/bench_decode_thread.py ../shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4 --repeat 2

Runs the VIDEO-mode landmarker over every frame of a file three ways and prints frames per
second: over frames decoded beforehand (the bench's "bare" loop), decoding in the same thread,
and decoding in a producer thread feeding a bounded queue (as the recognizer's CaptureThread).
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Callable, Iterator

import cv2
import numpy as np

from realtime_fer.landmarks import FaceLandmarkDetector, LandmarkerOptions


def decode(path: str) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def decode_in_thread(path: str) -> Iterator[np.ndarray]:
    q: queue.Queue = queue.Queue(16)

    def produce() -> None:
        for frame in decode(path):
            q.put(frame)
        q.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (frame := q.get()) is not None:
        yield frame


def fps(frames: Callable[[], Iterator[np.ndarray]], num_faces: int) -> float:
    with FaceLandmarkDetector(LandmarkerOptions(num_faces=num_faces), running_mode="video") as det:
        t0, n = time.perf_counter(), 0
        for i, frame in enumerate(frames()):
            det.detect_for_video(frame, i * 40)
            n += 1
        return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--num-faces", type=int, default=2)
    args = ap.parse_args()
    pre = list(decode(args.video))
    if not pre:
        print(f"error: no frame could be read from {args.video}", file=sys.stderr)
        return 2
    ways = {"pre-decoded": lambda: iter(pre), "decode in the same thread": lambda: decode(args.video), "decode thread": lambda: decode_in_thread(args.video)}
    for k in range(args.repeat):
        print(f"run {k + 1}: " + ", ".join(f"{name} {fps(make, args.num_faces):.1f} fps" for name, make in ways.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
