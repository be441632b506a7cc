#!/usr/bin/env python3
"""Resident memory of ``realtime-fer analyze`` over a long real video where faces come and go.

Builds a playlist of real clips (tools/soak_media.py: a talking face, an empty room, faces
walking in and out; 933 frames a cycle), runs ``realtime-fer analyze`` over ``--cycles`` of it
(attributions on, every prediction written) and samples the process's resident set size
(``VmRSS`` of /proc/PID/status) every ``--every`` seconds. The figure of merit is the growth of
the median RSS from the second quarter of the run to the last one (the first quarter is
warm-up: allocator pools, ONNX arenas, Numba). Target (issue 10): <= 5 %.

Usage::

    python tools/bench_memory.py --cycles 8 --json runs/memory.json --png runs/memory.png
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_media import build_playlist  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB, or ``None`` once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def quarter_growth(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Median RSS per quarter of the run's duration and the growth from the 2nd to the 4th."""
    t_end = samples[-1][0]
    quarters = [[r for t, r in samples if q * t_end / 4 <= t < (q + 1) * t_end / 4 or (q == 3 and t == t_end)] for q in range(4)]
    med = [statistics.median(q) if q else float("nan") for q in quarters]
    return {"q1_mib": med[0], "q2_mib": med[1], "q3_mib": med[2], "q4_mib": med[3], "growth_q2_to_q4": med[3] / med[1] - 1.0}


def plot(samples: list[tuple[float, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t for t, _ in samples], [r for _, r in samples], lw=1)
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    ap.add_argument("--cycles", type=int, default=8, help="playlist repetitions (933 frames each)")
    ap.add_argument("--every", type=float, default=0.25, help="seconds between RSS samples")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--png", metavar="OUT")
    args = ap.parse_args(argv)
    exe = str(Path(sys.executable).with_name("realtime-fer"))
    with tempfile.TemporaryDirectory(prefix="fer-memory-") as tmp:
        video = build_playlist(Path(args.data), Path(tmp) / "playlist.avi", args.cycles)
        out = Path(tmp) / "out.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.Popen([exe, "analyze", str(video), "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, GLOG_minloglevel="2"))
        samples: list[tuple[float, float]] = []
        while proc.poll() is None:
            r = rss_mib(proc.pid)
            if r is not None:
                samples.append((time.perf_counter() - t0, r))
            time.sleep(args.every)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            print(f"error: analyze failed ({proc.returncode}): {err[-1500:]}", file=sys.stderr)
            return 1
        lines = out.read_text().splitlines()
        predictions = sum(1 for line in lines if '"prediction"' in line)
        faces = {json.loads(line)["face"] for line in lines if '"prediction"' in line}
    frames = args.cycles * 933
    report = {"video_frames": frames, "cycles": args.cycles, "seconds": samples[-1][0], "predictions": predictions, "face_tracks": len(faces),
              "max_mib": max(r for _, r in samples), **quarter_growth(samples), "samples": samples}
    print(f"{frames} frames in {report['seconds']:.1f} s, {predictions} predictions, {len(faces)} face tracks created and destroyed")
    print(f"RSS median per quarter (MiB): {report['q1_mib']:.1f}, {report['q2_mib']:.1f}, {report['q3_mib']:.1f}, {report['q4_mib']:.1f}; "
          f"growth from the 2nd to the last quarter {100 * report['growth_q2_to_q4']:+.2f} %; max {report['max_mib']:.1f} MiB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=1))
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(samples, Path(args.png), f"realtime-fer analyze, {frames} frames, {len(faces)} face tracks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
