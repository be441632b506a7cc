#!/usr/bin/env python
"""How the face geometry of photo sources differs from video's (docs/video.md, "The photos'
face geometry is not the video's").

For each video clip and each folder of photos: the median, over faces, of three spans in image
pixels over the distance between the outer eye corners (eyes to mouth, mouth to chin, the face's
width), and of each face's RMS z-score against RAF-DB train's neutral faces
(``assets/resting_face.npz``: their mean and per-coordinate spread), before and after the
domain offset: the median resting face of the ``--target`` clips (their frames with the inner
lips in the clip's lowest quarter, ``resting_rows``) minus RAF-DB's neutral mean. MediaPipe runs in IMAGE mode;
photos are padded by 25 % as the recipe extracts them.

    python tools/face_geometry.py --video ../shared/data/video/mead/neutral.mp4 ../shared/data/video/wild/neutral.mp4 \\
        --photos ../shared/data/rafdb/train/neutral ../shared/data/fer2013/train/neutral --json runs/face_geometry.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime_fer.errors import FerError  # noqa: E402

log = logging.getLogger("face_geometry")
EYES, MOUTH, CHIN, TEMPLES = (33, 263), (61, 291), 152, (234, 454)


def spans(points: np.ndarray) -> list[float]:
    """[eyes to mouth, mouth to chin, face width] over the outer eye corners' distance (2D)."""
    p = np.asarray(points, np.float64)[:, :2]
    unit = np.linalg.norm(p[EYES[0]] - p[EYES[1]])
    eyes, mouth = p[list(EYES)].mean(0), p[list(MOUTH)].mean(0)
    return [float(np.linalg.norm(mouth - eyes) / unit), float(np.linalg.norm(p[CHIN] - mouth) / unit),
            float(np.linalg.norm(p[TEMPLES[0]] - p[TEMPLES[1]]) / unit)]


def clip_faces(path: Path, detector, step: int) -> list[np.ndarray]:  # noqa: ANN001
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FerError(f"cannot open video {path}")
    faces, i = [], 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if i % step == 0:
                found = detector.detect(img)
                if found:
                    faces.append(max(found, key=lambda f: f.bbox[2] - f.bbox[0]).points)
            i += 1
    finally:
        cap.release()
    return faces


def photo_faces(folder: Path, detector, limit: int) -> list[np.ndarray]:  # noqa: ANN001
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        raise FerError(f"no photo in {folder}")
    return [found[0].points for p in files if (img := cv2.imread(str(p))) is not None and (found := detector.detect(img))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", nargs="*", default=[], help="clips")
    ap.add_argument("--photos", nargs="*", default=[], help="folders of photos")
    ap.add_argument("--target", nargs="*", default=["../shared/data/video/talking"], help="clips (or folders of clips) whose resting face sets the offset")
    ap.add_argument("--step", type=int, default=4, help="every step-th frame of a clip")
    ap.add_argument("--max-photos", type=int, default=60)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        from realtime_fer.explain.resting import resting_face_statistics
        from realtime_fer.landmarks.detector import FaceLandmarkDetector, LandmarkerOptions
        from realtime_fer.landmarks.normalize import normalize_landmarks
        from realtime_fer.training.domain_offset import resting_rows

        if args.step < 1 or args.max_photos < 1:
            raise FerError("--step and --max-photos must be >= 1")
        stats = resting_face_statistics()
        sd = np.sqrt((stats.variances[:, None] * stats.components ** 2).sum(0) + stats.residual).reshape(468, 3)
        targets = [p for t in args.target for p in (sorted(Path(t).glob("*.mp4")) if Path(t).is_dir() else [Path(t)])]
        missing = [str(p) for p in [*map(Path, args.video), *map(Path, args.photos), *targets] if not p.exists()]
        if missing:
            raise FerError(f"not found: {', '.join(missing)}")
        with FaceLandmarkDetector(LandmarkerOptions(), "image") as video_det, FaceLandmarkDetector(LandmarkerOptions(pad_fraction=0.25), "image") as photo_det:
            rest = []
            for clip in targets:
                faces = clip_faces(clip, video_det, args.step)
                if len(faces) < 2:
                    continue
                f = normalize_landmarks(np.array(faces))
                rest.append(f[resting_rows(f)])
            if not rest:
                raise FerError("no face in the --target clips")
            offset = np.median(np.concatenate(rest), axis=0) - stats.mean
            rows = {}
            sources = [(str(v), clip_faces(Path(v), video_det, args.step)) for v in args.video]
            sources += [(str(p), photo_faces(Path(p), photo_det, args.max_photos)) for p in args.photos]
            for name, faces in sources:
                if not faces:
                    rows[name] = {"faces": 0}
                    continue
                pts = np.array(faces)
                norm = normalize_landmarks(pts)
                z = lambda m: float(np.median(np.sqrt((((norm - m) / sd) ** 2).mean(axis=(1, 2)))))  # noqa: E731
                s = np.median([spans(p) for p in pts], axis=0)
                rows[name] = {"faces": len(pts), "eyes_to_mouth": round(float(s[0]), 3), "mouth_to_chin": round(float(s[1]), 3), "face_width": round(float(s[2]), 3),
                              "z_rms": round(z(stats.mean), 2), "z_rms_after_offset": round(z(stats.mean + offset), 2)}
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| source | faces | eyes to mouth | mouth to chin | face width | RMS z vs RAF-DB neutral | after the offset |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if r["faces"]:
            print(f"| {name} | {r['faces']} | {r['eyes_to_mouth']} | {r['mouth_to_chin']} | {r['face_width']} | {r['z_rms']} | {r['z_rms_after_offset']} |")
        else:
            print(f"| {name} | 0 | - | - | - | - | - |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"target": [str(t) for t in targets], "sources": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
