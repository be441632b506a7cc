#!/usr/bin/env python3
"""Cold start: seconds from launching ``realtime-fer run`` to its first published prediction.

Each run launches a real ``realtime-fer run --source VIDEO`` process that publishes on a
loopback port, with a real :class:`~realtime_fer.publish.subscriber.Subscriber` connected
before it starts, and times (from the launch) the ``started`` status (the pipeline is ready:
imports, bundle, landmarker, Numba kernels done) and the first prediction (its window is full:
``window_length`` frames later). The process is then stopped.

Scenarios:

* ``first run``: Numba's cache (``NUMBA_CACHE_DIR``) and realtime_fer's start-up cache
  (``REALTIME_FER_CACHE_DIR``, :mod:`realtime_fer.models.bundle_cache`) are empty folders, as on
  the very first start after an install: the kernels are compiled (in the background) and the
  bundle's models are checked and fused with ``onnx``.
* ``later runs``: the same folders again, ``--repeat`` times (median, min, max).

Usage::

    python tools/bench_cold_start.py ../shared/data/video/mead/happy.mp4 --repeat 5 --json runs/cold_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realtime_fer.io_atomic import write_text_atomic

from realtime_fer.publish.schema import Prediction, Status
from realtime_fer.publish.subscriber import Subscriber

_WARM = re.compile(r"feature selector ready in ([0-9.]+) s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(video: str, caches: Path, timeout: float, extra: list[str], exe: list[str]) -> dict[str, float]:
    """Launch one recognizer; seconds to ``started`` and to the first prediction."""
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(caches / "numba"), REALTIME_FER_CACHE_DIR=str(caches / "realtime_fer"))
    out: dict[str, float] = {}
    with Subscriber(endpoint, topics=["fer."], timeout=0.05) as sub:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*exe, "-v", "run", "--source", video, "--publish", endpoint, *extra], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while time.perf_counter() - t0 < timeout:
                msg = sub.recv()
                now = time.perf_counter() - t0
                if isinstance(msg, Status) and msg.event == "started":
                    out.setdefault("started_s", now)
                elif isinstance(msg, Prediction):
                    out["first_prediction_s"] = now
                    break
                if proc.poll() is not None:
                    break
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
    if "first_prediction_s" not in out:
        sys.exit(f"error: no prediction within {timeout} s (exit {proc.returncode}):\n{err[-2000:]}")
    m = _WARM.search(err or "")
    if m:
        out["numba_s"] = float(m.group(1))
    return out


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", help="a real video file with a face")
    ap.add_argument("--repeat", type=int, default=5, help="later runs to time (default 5)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    ap.add_argument("--exe", metavar="CMD", help="the command to time instead of `realtime-fer` (e.g. another build's launcher)")
    ap.add_argument("extra", nargs="*", help="more arguments for `realtime-fer run` (after --)")
    args = ap.parse_args(argv)
    if not Path(args.video).is_file():
        print(f"error: no such video: {args.video}", file=sys.stderr)
        return 2
    exe = args.exe.split() if args.exe else [shutil.which("realtime-fer") or sys.exit("error: realtime-fer is not on PATH (activate the venv)")]
    with tempfile.TemporaryDirectory(prefix="fer-cold-start-") as tmp:
        cache = Path(tmp)
        first = one_run(args.video, cache, args.timeout, args.extra, exe)
        later = [one_run(args.video, cache, args.timeout, args.extra, exe) for _ in range(args.repeat)]
    report = {
        "video": args.video,
        "first_run": first,
        "later_runs": {key: _stats([r[key] for r in later if key in r]) for key in ("started_s", "first_prediction_s", "numba_s")},
        "later_runs_raw": later,
    }
    print(f"first run  : started {first.get('started_s', float('nan')):.2f} s, first prediction {first['first_prediction_s']:.2f} s"
          f" (Numba kernels ready after {first.get('numba_s', float('nan')):.2f} s, in the background)")
    lr = report["later_runs"]
    print(f"later runs : started {lr['started_s']['median']:.2f} s, first prediction {lr['first_prediction_s']['median']:.2f} s "
          f"(median of {args.repeat}; min {lr['first_prediction_s']['min']:.2f}, max {lr['first_prediction_s']['max']:.2f};"
          f" Numba kernels ready after {lr['numba_s']['median']:.2f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
