"""Render what ``realtime-fer run --show`` draws for one frame of a real run, without the frame.

The recognizer runs on a video file with the shipped default model; at the chosen time the
``--show`` overlay (face box, landmarks, smoothed emotion bars, the landmarks behind the top
emotion circled: red for, blue against) is drawn by the same function the window uses, on a dark
canvas instead of the frame, so the picture carries no pixels of the (research-licensed) clip.

    python tools/render_overlay.py ../shared/data/video/mead/happy.mp4 --at 3.0 --output docs/images/overlay.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--at", type=float, default=3.0, help="source time of the frame, seconds")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"error: no such video: {args.video}", file=sys.stderr)
        return 2

    import cv2

    from realtime_fer.errors import FerError
    from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
    from realtime_fer.pipeline.display import draw_overlay

    latest: dict[int, object] = {}
    picked: list = []

    def on_frame(frame, result) -> None:  # noqa: ANN001
        for track_id in result.lost:
            latest.pop(track_id, None)
        for prediction in result.predictions:
            latest[prediction.face] = prediction
        if not picked and (frame.source_pos_ms or 0.0) >= 1000.0 * args.at and result.faces and latest:
            picked.append((frame, result, dict(latest)))
            rec.stop()

    try:
        rec = open_recognizer(str(args.video), RuntimeConfig(device="cpu"), [ListSink()], on_frame=on_frame)
        rec.run()
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not picked:
        print(f"error: no scored face at or after {args.at} s in {args.video}", file=sys.stderr)
        return 2
    frame, result, predictions = picked[0]
    canvas = np.full_like(frame.image, 24)
    emotions = list(next(iter(predictions.values())).probabilities)
    image = draw_overlay(canvas, result.faces, predictions, emotions)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), image)
    top = {face: p.top for face, p in predictions.items()}
    print(f"frame at {(frame.source_pos_ms or 0.0) / 1000.0:.2f} s, {len(result.faces)} face(s), top {top} -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
