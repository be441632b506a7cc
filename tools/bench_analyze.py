#!/usr/bin/env python3
"""Whole-process ``realtime-fer analyze`` against a bare Face Landmarker loop, as a ratio.

Each pair runs, back to back, fresh processes over the same video and times their wall clock
from launch to exit:

* **bare**: Python that imports MediaPipe, creates a VIDEO-mode Face Landmarker (same options
  as the recognizer's whole-frame landmarker: the runtime defaults, 1 face since 0.7.0,
  blendshapes when the default model reads them), decodes every frame with OpenCV and detects
  its landmarks: the least any tool built on the landmarker must do. Two of them: **free** (the
  OS places its threads, as a script would) and **pinned** (the whole process on the CPU the
  recognizer gives its landmarker, as ``realtime-fer bench`` runs its bare pass: on a 2-core VM
  about 10 % faster than free, so the stricter reference);
* **analyze**: ``realtime-fer analyze VIDEO --output OUT.jsonl`` with the default config
  (attributions on), writing every prediction, with warm caches (a first, untimed analyze run
  fills Numba's cache and realtime_fer's start-up cache) and, with ``--cold``, also with both
  caches empty (``NUMBA_CACHE_DIR`` and ``REALTIME_FER_CACHE_DIR`` fresh folders: the first run
  after an install; the kernels compile in a background thread meanwhile).

The ratio of a pair is analyze over bare; the report is the median of ``--pairs`` ratios per
combination (the runs of a pair share the machine's load, which drifts between pairs).
``--loops N`` first joins N copies of the video into one long file (stream copy with
imageio-ffmpeg's ffmpeg).

Usage::

    python tools/bench_analyze.py ../shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4 --loops 5 --pairs 3 --cold
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realtime_fer.io_atomic import write_text_atomic

_BARE = r"""
import dataclasses, sys, cv2
from realtime_fer.landmarks.detector import FaceLandmarkDetector
from realtime_fer.pipeline.config import RuntimeConfig
video, blend = sys.argv[1], sys.argv[2] == "1"
if len(sys.argv) > 3:  # pinned: the whole process on this CPU (before MediaPipe starts its threads)
    import os
    os.sched_setaffinity(0, {int(sys.argv[3])})
cap = cv2.VideoCapture(video)
fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
n = 0
with FaceLandmarkDetector(dataclasses.replace(RuntimeConfig().landmarker, blendshapes=blend), running_mode="video") as det:
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        det.detect_for_video(frame, int(round(n * 1000.0 / fps)))
        n += 1
print(n)
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def _looped(video: Path, loops: int, folder: Path) -> Path:
    if loops <= 1:
        return video
    import imageio_ffmpeg

    out = folder / f"{video.stem}_x{loops}{video.suffix}"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(video), "-an", "-c", "copy", str(out)]
    subprocess.run(cmd, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--loops", type=int, default=1, help="join this many copies of the video first (default 1)")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    ap.add_argument("--cold", action="store_true", help="also time analyze with Numba's and realtime_fer's caches empty, in each pair")
    ap.add_argument("--exe", metavar="CMD", help="the command to time instead of `realtime-fer` (e.g. another build's launcher)")
    args = ap.parse_args(argv)
    video = Path(args.video)
    if not video.is_file():
        print(f"error: no such video: {video}", file=sys.stderr)
        return 2
    from realtime_fer.models.bundle import load_bundle

    blend = "1" if load_bundle().blendshapes else "0"
    exe = args.exe.split() if args.exe else [str(Path(sys.executable).with_name("realtime-fer"))]
    env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
    from realtime_fer.affinity import plan_cpus

    plan = plan_cpus(True)
    pin_cpu = str(min(plan.landmarker)) if plan is not None else None
    rows = []
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="fer-bench-analyze-") as tmp:
        long_video = _looped(video, args.loops, Path(tmp))
        out = Path(tmp) / "out.jsonl"
        _timed([*exe, "analyze", str(long_video), "--output", str(out)], env)  # warm the file cache and Numba's
        for i in range(args.pairs):
            row: dict[str, float | int] = {}
            row["bare_s"], frames = _timed([sys.executable, "-c", _BARE, str(long_video), blend], env)
            if pin_cpu is not None:
                row["bare_pinned_s"], _ = _timed([sys.executable, "-c", _BARE, str(long_video), blend, pin_cpu], env)
            row["analyze_s"], _ = _timed([*exe, "analyze", str(long_video), "--output", str(out)], env)
            if args.cold:
                caches = Path(tmp) / f"cold{i}"
                cold_env = dict(env, NUMBA_CACHE_DIR=str(caches / "numba"), REALTIME_FER_CACHE_DIR=str(caches / "realtime_fer"))
                row["analyze_cold_s"], _ = _timed([*exe, "analyze", str(long_video), "--output", str(out)], cold_env)
            row["frames"] = int(frames)
            row["predictions"] = sum(1 for line in out.open() if '"prediction"' in line)
            for a in ("analyze_s", "analyze_cold_s"):
                for b in ("bare_s", "bare_pinned_s"):
                    if a in row and b in row:
                        row[f"{a[:-2]}/{b[:-2]}"] = row[a] / row[b]
            rows.append(row)
            print(f"pair {i + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    ratios = {k: [float(r[k]) for r in rows] for k in rows[0] if "/" in k}
    report = {"video": str(video), "loops": args.loops, "frames": rows[0]["frames"], "pairs": rows,
              "loadavg_before": load_before, "loadavg_after": list(os.getloadavg()), "bare_pinned_cpu": pin_cpu,
              "ratios": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in ratios.items()},
              "median_ratio": statistics.median(ratios["analyze/bare"]), "min_ratio": min(ratios["analyze/bare"]), "max_ratio": max(ratios["analyze/bare"])}
    for k, v in report["ratios"].items():
        print(f"{k}, whole process: median {v['median']:.3f} over {len(rows)} pairs (min {v['min']:.3f}, max {v['max']:.3f})")
    print(f"{report['frames']} frames; load average {load_before[0]:.2f} before, {report['loadavg_after'][0]:.2f} after")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
