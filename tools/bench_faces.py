"""Every face a person can see (issue 21): the figures of the face finder.

    PYTHONPATH=. python tools/bench_faces.py [--repeat 3] [--skip cost,jitter,...]

Prints, on the real data under ``../shared/data``:

* ``group``: ``images/pyfeat/multi_face.jpg`` through the pipeline as ``analyze`` runs a still
  (runtime defaults): faces, their boxes, each one's prediction and top;
* ``small``: ``video/unlabelled/s13.mp4`` (a standing person, face ~40 px high): the share of
  frames with a face and the track ids, defaults vs the finder off (as before);
* ``jitter``: median frame-to-frame change of the normalised landmarks
  (:func:`~realtime_fer.landmarks.normalize.normalize_landmarks`, distance per landmark, 468) on
  ``mead/neutral.mp4`` and ``wild/angry.mp4``: the whole-frame landmarker with ``num_faces: 1``
  (before), the default landmarker with the finder, and the same face followed through a crop
  slot (how every extra face is tracked);
* ``cost``: landmark-stage ms/frame on ``pyfeat/WolfgangLanger_Pexels.mp4`` (one close face),
  finder off vs on, passes alternated ``--repeat`` times; and per-frame cost with 1, 2 and 5
  faces (``multi_face.jpg`` repeated as a 60-frame video, ``finder.max_faces`` 1, 2, 5).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from realtime_fer.capture.frame import Frame
from realtime_fer.landmarks.detector import FaceLandmarkDetector, LandmarkerOptions
from realtime_fer.landmarks.finder import CropLandmarker, FinderOptions, MultiFaceLandmarker
from realtime_fer.landmarks.normalize import normalize_landmarks

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def read_frames(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fps


def processor(finder: bool = True, max_faces: int | None = None):  # noqa: ANN201
    from realtime_fer.pipeline.config import RuntimeConfig
    from realtime_fer.pipeline.processor import FrameProcessor

    cfg = RuntimeConfig()
    cfg.finder = dataclasses.replace(cfg.finder, enabled=finder, **({"max_faces": max_faces} if max_faces else {}))
    return FrameProcessor.create(cfg)


def group() -> None:
    img = cv2.imread(str(DATA / "images/pyfeat/multi_face.jpg"))
    proc = processor()
    proc.warm_up()
    res = proc.process(Frame(index=0, image=img, timestamp=time.time(), t_capture=time.perf_counter()), still=True)
    happy = 0
    print(f"group multi_face.jpg: {len(res.faces)} faces, {len(res.predictions)} predictions")
    for f in sorted(res.faces, key=lambda f: f.bbox[0]):
        p = f.prediction
        top3 = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:3] if p else []
        happy += int(p is not None and p.top == "happy")
        print(f"  face {f.track_id}: bbox {[int(v) for v in f.bbox]} top {p.top if p else None} ({', '.join(f'{k} {v:.2f}' for k, v in top3)})")
    print(f"  happy on top: {happy} of {len(res.faces)}")
    proc.close()


def small() -> None:
    frames, fps = read_frames(DATA / "video/unlabelled/s13.mp4")
    for finder in (False, True):
        proc = processor(finder=finder)
        with_face, ids = 0, set()
        for i, img in enumerate(frames):
            res = proc.process(Frame(index=i, image=img, timestamp=i / fps, t_capture=time.perf_counter(), source_pos_ms=1000.0 * i / fps))
            with_face += bool(res.faces)
            ids.update(f.track_id for f in res.faces)
        passes = proc.detector.finder.passes if finder else 0
        print(f"small s13.mp4 finder {'on ' if finder else 'off'}: face in {with_face}/{len(frames)} frames ({100.0 * with_face / len(frames):.0f} %), track ids {sorted(ids)}, finder passes {passes}")
        proc.close()


def frame_change(seq: list[np.ndarray | None]) -> float:
    """Median distance a normalised landmark moves between consecutive frames with a face."""
    diffs = [np.linalg.norm(b - a, axis=-1).ravel() for a, b in zip(seq, seq[1:]) if a is not None and b is not None]
    return float(np.median(np.concatenate(diffs))) if diffs else float("nan")


def jitter() -> None:
    for name in ("mead/neutral.mp4", "wild/angry.mp4"):
        frames, fps = read_frames(DATA / "video" / name)
        out = {}
        # before: the whole frame, num_faces 1
        with FaceLandmarkDetector(LandmarkerOptions(), running_mode="video") as det:
            out["before (num_faces 1)"] = [_norm(det.detect_for_video(f, int(i * 1000 / fps))) for i, f in enumerate(frames)]
        with FaceLandmarkDetector(LandmarkerOptions(num_faces=2), running_mode="video") as det:  # the old default, for scale
            out["num_faces 2 (old default)"] = [_norm(det.detect_for_video(f, int(i * 1000 / fps))) for i, f in enumerate(frames)]
        multi = MultiFaceLandmarker(FaceLandmarkDetector(LandmarkerOptions(), running_mode="video"), FinderOptions())
        out["finder on (default)"] = [_norm(multi.detect_for_video(f, int(i * 1000 / fps))) for i, f in enumerate(frames)]
        multi.close()
        # the same face through a crop slot, as every extra face is tracked
        crop = CropLandmarker(LandmarkerOptions(), FinderOptions(), "video")
        with FaceLandmarkDetector(LandmarkerOptions(), running_mode="image") as det:
            start = next(((i, faces[0]) for i, faces in ((i, det.detect(f)) for i, f in enumerate(frames)) if faces), None)
        seq = []
        if start is not None:
            crop.start(start[1].bbox)
            for i, f in enumerate(frames[start[0]:], start[0]):
                face = crop.track(f, int(i * 1000 / fps))
                seq.append(normalize_landmarks(face.points) if face is not None else None)
        out["crop slot"] = seq
        crop.close()
        print(f"jitter {name} ({len(frames)} frames): " + ", ".join(f"{k} {frame_change(v):.5f} ({sum(x is not None for x in v)} frames)" for k, v in out.items()))


def _norm(faces: list) -> np.ndarray | None:
    return normalize_landmarks(faces[0].points) if faces else None


def cost(repeat: int) -> None:
    frames, fps = read_frames(DATA / "video/pyfeat/WolfgangLanger_Pexels.mp4")
    results: dict[str, list[float]] = {"finder off": [], "finder on": []}
    finder_s, passes = 0.0, 0
    for _ in range(repeat):
        for label in results:
            det = FaceLandmarkDetector(LandmarkerOptions(), running_mode="video")
            if label == "finder on":
                det = MultiFaceLandmarker(det, FinderOptions())
                find = det.finder.find

                def timed(image: np.ndarray, _find=find, **kw: object) -> list:
                    nonlocal finder_s
                    t = time.perf_counter()
                    try:
                        return _find(image, **kw)
                    finally:
                        finder_s += time.perf_counter() - t

                det.finder.find = timed  # type: ignore[method-assign]
            times = []
            for i, f in enumerate(frames):
                t0 = time.perf_counter()
                det.detect_for_video(f, int(i * 1000 / fps))
                times.append(time.perf_counter() - t0)
            if label == "finder on":
                passes += det.finder.passes
            det.close()
            results[label].append(1000.0 * statistics.fmean(times))
    off, on = statistics.median(results["finder off"]), statistics.median(results["finder on"])
    lo_off, lo_on = min(results["finder off"]), min(results["finder on"])
    amortised = 1000.0 * finder_s / (repeat * len(frames))
    print(f"cost one close face (Pexels, {len(frames)} frames x {repeat}): landmark stage mean ms/frame finder off {', '.join(f'{v:.2f}' for v in results['finder off'])}; "
          f"on {', '.join(f'{v:.2f}' for v in results['finder on'])}; median {off:.2f} vs {on:.2f} ({100.0 * (on - off) / off:+.1f} %), "
          f"best {lo_off:.2f} vs {lo_on:.2f} ({100.0 * (lo_on - lo_off) / lo_off:+.1f} %); finder passes {passes // repeat} per run, "
          f"{1000.0 * finder_s / max(passes, 1):.1f} ms each = {amortised:.2f} ms/frame amortised ({100.0 * amortised / lo_off:.1f} % of the best finder-off mean)")
    img = cv2.imread(str(DATA / "images/pyfeat/multi_face.jpg"))
    per: dict[int, float] = {}
    for n in (1, 2, 5):
        for max_faces in (n, n + 1):  # the whole-frame landmarker may see none of these faces
            det = MultiFaceLandmarker(FaceLandmarkDetector(LandmarkerOptions(), running_mode="video"), FinderOptions(max_faces=max_faces))
            tracked = len(det.detect_for_video(img, 0))  # finds the faces and makes the crop landmarkers
            if tracked >= n:
                break
            det.close()
        best = []
        for _ in range(repeat):
            times = []
            for i in range(1, 61):
                t0 = time.perf_counter()
                tracked = len(det.detect_for_video(img, int((i + 60 * len(best)) * 1000 / 25)))
                times.append(time.perf_counter() - t0)
            best.append(1000.0 * statistics.median(times))
        per[n] = statistics.median(best)
        det.close()
        print(f"cost {n} face(s) (multi_face.jpg as video, max_faces {max_faces}): {tracked} tracked, landmark stage median {per[n]:.2f} ms/frame")
    print(f"cost per extra face: {(per[2] - per[1]):.2f} ms (1->2), {(per[5] - per[1]) / 4:.2f} ms (1->5, per face)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="group,small,jitter,cost", help="comma-separated parts")
    args = ap.parse_args()
    if not (DATA / "images/pyfeat/multi_face.jpg").is_file():
        print(f"no data under {DATA}", file=sys.stderr)
        return 2
    parts = args.only.split(",")
    for part in parts:
        if part == "cost":
            cost(args.repeat)
        else:
            {"group": group, "small": small, "jitter": jitter}[part]()
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
