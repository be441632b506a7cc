"""Which accelerator the recognizer's two engines actually run on (used by tools/gpu_check.sh).

    python tools/gpu_probe.py landmarker VIDEO   # MediaPipe Face Landmarker asked for the GPU delegate
    python tools/gpu_probe.py onnx               # the emotion models' onnxruntime session asked for CUDA
    python tools/gpu_probe.py summary DIR        # what the bench JSONs in DIR say ran where

Each prints ``key: value`` lines; exit status 0 when the probe ran (whatever it ran on), 2 when
it could not run at all (one ``error:`` line).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def landmarker(video: str) -> int:
    import cv2

    from realtime_fer.landmarks.detector import FaceLandmarkDetector, LandmarkerOptions

    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < 60:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames:
        print(f"error: no frame could be read from {video}", file=sys.stderr)
        return 2
    with FaceLandmarkDetector(LandmarkerOptions(delegate="gpu", num_faces=1), running_mode="video") as det:
        det.detect_for_video(frames[0], 0)
        t0 = time.perf_counter()
        faces = 0
        for i, img in enumerate(frames[1:], 1):
            faces += len(det.detect_for_video(img, i * 40))
        ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(frames) - 1)
        print(f"landmarker delegate: {det.delegate}")
    print(f"landmarker ms/frame: {ms:.2f} over {len(frames) - 1} frames, {faces} face detections")
    return 0


def onnx() -> int:
    import onnxruntime as ort

    from realtime_fer.models.bundle import load_bundle
    from realtime_fer.models.runtime import cuda_device_present
    from realtime_fer.models.scorer import BundleScorer

    print(f"onnxruntime {ort.__version__}, available providers: {', '.join(ort.get_available_providers())}")
    print(f"NVIDIA device node present: {cuda_device_present()}")
    scorer = BundleScorer(load_bundle(), device="auto")
    print(f"onnxruntime provider: {scorer.provider}")
    return 0


def summary(folder: str) -> int:
    ran = {}
    for name in ("bench.json", "streams.json"):
        path = Path(folder) / name
        if path.is_file():
            data = json.loads(path.read_text())
            ran[name] = (data.get("delegate", "?"), data.get("provider", "?"))
            print(f"{name}: landmarker delegate {ran[name][0]}, onnxruntime provider {ran[name][1]}")
        else:
            print(f"{name}: missing (that bench did not finish)")
    on_gpu = [n for n, (d, p) in ran.items() if d == "gpu" or p.startswith("CUDA")]
    print("result: " + ("ran on the GPU in " + ", ".join(on_gpu) if on_gpu else "ran on the CPU only (no GPU delegate, no CUDA provider)"))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "onnx":
        return onnx()
    if len(argv) == 2 and argv[0] == "landmarker":
        return landmarker(argv[1])
    if len(argv) == 2 and argv[0] == "summary":
        return summary(argv[1])
    print("error: usage: gpu_probe.py landmarker VIDEO | onnx | summary DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
