#!/usr/bin/env python3
"""Soak test: the live recognizer for a long time against a faulty loopback camera.

What runs, all real and on loopback:

* **a camera**: :class:`LoopbackCamera`, an MJPEG-over-HTTP server (``multipart/x-mixed-replace``,
  the protocol of most IP cameras) looping a playlist of real clips where faces come and go
  (tools/soak_media.py) at 24 fps. On a schedule it injects faults:

  - ``die``: the server closes every connection and stops listening, then comes back;
  - ``hang``: connections stay open but nothing is sent (new ones get no reply either);
  - ``corrupt``: a few parts are random bytes instead of JPEG;
  - ``resize``: the frames change resolution (960x540 instead of 640x360), then change back.

* **the recognizer**: ``realtime-fer run --source http://127.0.0.1:PORT/feed.mjpg`` as its own
  process, default model and options (attributions on), heartbeat every second, publishing on a
  loopback port.
* **two subscribers**: a *reference* one that always reads, and a *flaky* one that in turn
  reads normally, reads slowly (0.2 s a message: it falls behind and ZeroMQ drops its messages)
  and goes away (socket closed) for a while.

Every ``--interval`` seconds it samples the recognizer's resident memory, frames processed
and dropped (from the heartbeats), capture-to-publish latency p50/p95 of the predictions, and
the messages each subscriber got. Per fault it measures the recovery: seconds from the end of
the fault to the first frame processed after it (a prediction or a status on a frame captured
after that moment). It writes a JSON report and a PNG plot.

Usage::

    python tools/soak.py --duration 1800 --json runs/soak.json --png runs/soak.png

Targets (issue 10): no crash; every fault followed by recovery within 10 s; latency p95 within
2 frame periods outside faults; RSS flat (growth from the 2nd to the last quarter <= 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from realtime_fer.io_atomic import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import quarter_growth, rss_mib  # noqa: E402
from soak_media import FPS, build_playlist  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = b"frame"
ALT_SIZE = (960, 540)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# the camera
# --------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        camera: LoopbackCamera = self.server.camera  # type: ignore[attr-defined]
        if self.path.split("?")[0] != "/feed.mjpg":
            self.send_error(404)
            return
        camera.serve(self)

    def log_message(self, *args: object) -> None:  # quiet
        pass


class LoopbackCamera:
    """An MJPEG-over-HTTP camera on 127.0.0.1 looping pre-encoded JPEG frames at ``fps``."""

    def __init__(self, jpegs: list[bytes], fps: float, port: int) -> None:
        self.jpegs, self.fps, self.port = jpegs, fps, port
        self.url = f"http://127.0.0.1:{port}/feed.mjpg"
        self._t0 = time.monotonic()
        self._generation = 0
        self._hang_until = 0.0
        self._resize_until = 0.0
        self._corrupt_left = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._rng = np.random.default_rng(0)
        self.start()

    # -- server lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.camera = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="camera").start()

    def stop(self) -> None:
        with self._lock:
            self._generation += 1  # every open connection ends
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- faults ---------------------------------------------------------------------------------
    def die(self, seconds: float) -> None:
        """Close every connection and refuse new ones for ``seconds``."""
        self.stop()
        threading.Timer(seconds, self.start).start()

    def hang(self, seconds: float) -> None:
        """Keep connections open but send nothing for ``seconds``."""
        self._hang_until = time.monotonic() + seconds

    def corrupt(self, frames: int) -> None:
        """Send random bytes instead of the next ``frames`` JPEG images."""
        with self._lock:
            self._corrupt_left = frames

    def resize(self, seconds: float) -> None:
        """Send the frames at :data:`ALT_SIZE` for ``seconds``."""
        self._resize_until = time.monotonic() + seconds

    # -- serving --------------------------------------------------------------------------------
    def _frame(self) -> bytes:
        idx = int((time.monotonic() - self._t0) * self.fps) % len(self.jpegs)
        data = self.jpegs[idx]
        with self._lock:
            if self._corrupt_left > 0:
                self._corrupt_left -= 1
                return self._rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes()
        if time.monotonic() < self._resize_until:
            import cv2

            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            ok, buf = cv2.imencode(".jpg", cv2.resize(img, ALT_SIZE), [cv2.IMWRITE_JPEG_QUALITY, 80])
            data = buf.tobytes() if ok else data
        return data

    def serve(self, handler: _Handler) -> None:
        generation = self._generation
        while time.monotonic() < self._hang_until:  # a hung camera does not even answer
            if generation != self._generation:
                return
            time.sleep(0.05)
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            handler.send_header("Cache-Control", "no-cache")
            handler.end_headers()
            period = 1.0 / self.fps
            next_t = time.monotonic()
            while generation == self._generation:
                now = time.monotonic()
                if now < self._hang_until:
                    time.sleep(0.05)
                    next_t = time.monotonic()
                    continue
                next_t += period
                if next_t > now:
                    time.sleep(next_t - now)
                elif now - next_t > 1.0:
                    next_t = now
                data = self._frame()
                handler.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data) + data + b"\r\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


def encode_playlist(video: Path) -> list[bytes]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        out.append(buf.tobytes())
    cap.release()
    if not out:
        raise SystemExit(f"error: no frames in {video}")
    return out


# --------------------------------------------------------------------------------------------
# subscribers
# --------------------------------------------------------------------------------------------
@dataclass
class Received:
    """What one subscriber got: (t_recv, t_capture, t_publish) per prediction; statuses."""

    predictions: list[tuple[float, float, float]] = field(default_factory=list)
    statuses: list[tuple[float, str, float, int, int, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def subscribe(endpoint: str, into: Received, stop: threading.Event, mode: "callable[[], str] | None" = None) -> None:  # type: ignore[valid-type]
    """Receive until ``stop``; ``mode()`` says ``normal``, ``slow`` or ``absent`` (flaky one)."""
    from realtime_fer.publish.schema import Prediction, Status
    from realtime_fer.publish.subscriber import Subscriber

    sub = None
    try:
        while not stop.is_set():
            m = mode() if mode else "normal"
            if m == "absent":
                if sub is not None:
                    sub.close()
                    sub = None
                time.sleep(0.1)
                continue
            if sub is None:
                sub = Subscriber(endpoint, topics=["fer."], timeout=0.2, rcvhwm=100)
            msg = sub.recv()
            if msg is None:
                continue
            now = time.time()
            with into.lock:
                if isinstance(msg, Prediction):
                    into.predictions.append((now, msg.t_capture, msg.t_publish or now))
                elif isinstance(msg, Status):
                    into.statuses.append((now, msg.event, msg.timestamp, msg.frames, msg.dropped, msg.fps))
            if m == "slow":
                time.sleep(0.2)
    finally:
        if sub is not None:
            sub.close()


# --------------------------------------------------------------------------------------------
# the soak
# --------------------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str
    t_start: float
    seconds: float
    t_end: float = 0.0
    recovery_s: float | None = None


FAULT_KINDS = ("die", "hang", "corrupt", "resize")
FAULT_SECONDS = {"die": 8.0, "hang": 8.0, "corrupt": 0.0, "resize": 20.0}
_PROCESSING = {"no_face", "face_found", "face_lost", "recovered"}


def first_frame_after(ref: Received, t: float) -> float | None:
    """Capture time of the first frame processed after wall time ``t`` (prediction or a status
    that comes from processing a frame)."""
    with ref.lock:
        times = [tc for _, tc, _ in ref.predictions if tc >= t] + [ts for _, ev, ts, *_ in ref.statuses if ev in _PROCESSING and ts >= t]
    return min(times) if times else None


def flaky_mode(t: float, period: float) -> str:
    phase = (t % period) / period
    return "normal" if phase < 1 / 3 else "slow" if phase < 2 / 3 else "absent"


def run_soak(args: argparse.Namespace) -> dict:
    data = Path(args.data)
    with tempfile.TemporaryDirectory(prefix="fer-soak-") as tmp:
        video = build_playlist(data, Path(tmp) / "playlist.avi", 1)
        jpegs = encode_playlist(video)
        camera = LoopbackCamera(jpegs, FPS, free_port())
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        cfg = Path(tmp) / "soak.yaml"
        cfg.write_text(f"heartbeat_interval_s: 1.0\npublish:\n  endpoint: {endpoint}\n")
        log_path = Path(args.log) if args.log else Path(tmp) / "recognizer.log"
        exe = str(Path(sys.executable).with_name("realtime-fer"))
        ref, flaky = Received(), Received()
        stop = threading.Event()
        t_wall0 = time.time()
        threads = [
            threading.Thread(target=subscribe, args=(endpoint, ref, stop), daemon=True),
            threading.Thread(target=subscribe, args=(endpoint, flaky, stop, lambda: flaky_mode(time.time() - t_wall0, args.flaky_period)), daemon=True),
        ]
        for th in threads:
            th.start()
        with open(log_path, "w") as log:
            proc = subprocess.Popen([exe, "-v", "run", "--source", camera.url, "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, GLOG_minloglevel="2"))
        t0 = time.monotonic()
        faults: list[Fault] = []
        samples: list[dict] = []
        next_fault = args.first_fault
        next_sample = args.interval
        kind_i = 0
        crashed = None
        try:
            while time.monotonic() - t0 < args.duration:
                el = time.monotonic() - t0
                if proc.poll() is not None:
                    crashed = f"the recognizer exited with {proc.returncode} after {el:.0f} s"
                    break
                if el >= next_fault and el < args.duration - args.fault_every / 2:
                    kind = FAULT_KINDS[kind_i % len(FAULT_KINDS)]
                    kind_i += 1
                    f = Fault(kind, time.time(), FAULT_SECONDS[kind])
                    f.t_end = f.t_start + f.seconds
                    {"die": camera.die, "hang": camera.hang, "resize": camera.resize}.get(kind, lambda s: camera.corrupt(3))(f.seconds)
                    faults.append(f)
                    print(f"[{el:6.0f} s] fault: {kind} ({f.seconds:.0f} s)", flush=True)
                    next_fault += args.fault_every
                if el >= next_sample:
                    samples.append({"t": el, "rss_mib": rss_mib(proc.pid), "wall": time.time()})
                    next_sample += args.interval
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            time.sleep(0.5)
            stop.set()
            for th in threads:
                th.join(5)
            camera.stop()
        log_text = log_path.read_text(errors="replace")
    return summarise(args, samples, faults, ref, flaky, crashed, proc.returncode, log_text, t_wall0)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(args: argparse.Namespace, samples: list[dict], faults: list[Fault], ref: Received, flaky: Received,
              crashed: str | None, returncode: int | None, log_text: str, t_wall0: float) -> dict:
    period = 1.0 / FPS
    for f in faults:
        # after the fault is over; a resize is two changes: to the new size and back
        settle = f.t_end if f.kind != "corrupt" else f.t_start
        first = first_frame_after(ref, settle + (0.5 if f.kind == "resize" else 0.0))
        f.recovery_s = None if first is None else max(0.0, first - settle)
        if f.kind == "resize" and f.recovery_s is not None:
            during = first_frame_after(ref, f.t_start + 0.5)
            f.recovery_s = None if during is None or during > f.t_end else max(f.recovery_s, during - f.t_start)
    # fault windows: from the start to 2 s after recovery (or 15 s when none)
    windows = [(f.t_start, (f.t_end if f.kind != "corrupt" else f.t_start) + (f.recovery_s if f.recovery_s is not None else 15.0) + 2.0) for f in faults]

    def in_fault(t: float) -> bool:
        return any(a <= t <= b for a, b in windows)

    rows = []
    prev_wall = t_wall0
    beats = [(ts, frames, dropped) for _, ev, ts, frames, dropped, _ in ref.statuses if ev == "heartbeat"]
    for s in samples:
        w = s["wall"]
        lat = [(tp - tc) * 1000.0 for tr, tc, tp in ref.predictions if prev_wall <= tr < w]
        lat_ok = [(tp - tc) * 1000.0 for tr, tc, tp in ref.predictions if prev_wall <= tr < w and not in_fault(tc)]
        b0 = [b for b in beats if b[0] < prev_wall]
        b1 = [b for b in beats if b[0] < w]
        frames = (b1[-1][1] - (b0[-1][1] if b0 else 0)) if b1 else 0
        dropped = (b1[-1][2] - (b0[-1][2] if b0 else 0)) if b1 else 0
        n_ref = sum(1 for tr, *_ in ref.predictions if prev_wall <= tr < w)
        n_flaky = sum(1 for tr, *_ in flaky.predictions if prev_wall <= tr < w)
        rows.append({
            "t": s["t"], "rss_mib": s["rss_mib"], "fps": frames / (w - prev_wall), "dropped": dropped,
            "latency_p50_ms": _pct(lat, 50), "latency_p95_ms": _pct(lat, 95), "latency_p95_ms_outside_faults": _pct(lat_ok, 95),
            "predictions_reference": n_ref, "predictions_flaky": n_flaky, "lost_by_flaky": max(0, n_ref - n_flaky),
            "flaky_mode": flaky_mode((prev_wall + w) / 2 - t_wall0, args.flaky_period),
            "faults": sorted({f.kind for f, (a, b) in zip(faults, windows) if a < w and b > prev_wall}),
        })
        prev_wall = w
    lat_outside = [(tp - tc) * 1000.0 for _, tc, tp in ref.predictions if not in_fault(tc)]
    rss = [(r["t"], r["rss_mib"]) for r in rows if r["rss_mib"] is not None]
    sent = None
    for line in log_text.splitlines():
        if "publisher closed:" in line and " sent" in line:
            try:
                sent = int(line.split("publisher closed:")[1].split("sent")[0].strip())
            except ValueError:
                pass
    recoveries = [f.recovery_s for f in faults]
    report = {
        "t_wall0": t_wall0,
        "duration_s": args.duration,
        "interval_s": args.interval,
        "crashed": crashed,
        "recognizer_exit_code": returncode,
        "faults": [asdict(f) for f in faults],
        "faults_recovered_within_10s": sum(1 for r in recoveries if r is not None and r <= 10.0),
        "faults_total": len(faults),
        "max_recovery_s": max((r for r in recoveries if r is not None), default=None),
        "latency_p50_ms_outside_faults": _pct(lat_outside, 50),
        "latency_p95_ms_outside_faults": _pct(lat_outside, 95),
        "frame_period_ms": period * 1000.0,
        "predictions_reference": len(ref.predictions),
        "predictions_flaky": len(flaky.predictions),
        "messages_sent": sent,
        "messages_received_reference": len(ref.predictions) + len(ref.statuses),
        "rss": quarter_growth(rss) if len(rss) >= 8 else None,
        "intervals": rows,
    }
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["intervals"]
    t = [r["t"] / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(t, [r["rss_mib"] for r in rows])
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(t, [r["fps"] for r in rows], label="processed fps")
    axes[1].plot(t, [r["dropped"] / report["interval_s"] for r in rows], label="dropped / s")
    axes[1].set_ylabel("frames / s")
    axes[1].legend(loc="lower left", fontsize=8)
    axes[2].plot(t, [r["latency_p50_ms"] for r in rows], label="p50")
    axes[2].plot(t, [r["latency_p95_ms"] for r in rows], label="p95")
    axes[2].axhline(2 * report["frame_period_ms"], color="k", lw=0.8, ls="--", label="2 frame periods")
    axes[2].set_ylabel("capture→publish (ms)")
    axes[2].set_yscale("log")
    axes[2].legend(loc="upper left", fontsize=8)
    axes[3].plot(t, [r["predictions_reference"] for r in rows], label="reference subscriber")
    axes[3].plot(t, [r["predictions_flaky"] for r in rows], label="flaky subscriber")
    axes[3].set_ylabel(f"predictions / {report['interval_s']:.0f} s")
    axes[3].set_xlabel("minutes")
    axes[3].legend(loc="lower left", fontsize=8)
    colors = {"die": "tab:red", "hang": "tab:orange", "corrupt": "tab:purple", "resize": "tab:green"}
    for f in report["faults"]:
        a = (f["t_start"] - report["t_wall0"]) / 60
        b = (f["t_end"] - report["t_wall0"] + (f["recovery_s"] or 0)) / 60
        for ax in axes:
            ax.axvspan(a, max(b, a + 0.05), color=colors[f["kind"]], alpha=0.15, lw=0)
    axes[0].set_title("realtime-fer soak: shaded = injected faults (red die, orange hang, purple corrupt, green resize) until recovery")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds (default 1800)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds per sample (default 10)")
    ap.add_argument("--first-fault", type=float, default=60.0)
    ap.add_argument("--fault-every", type=float, default=90.0)
    ap.add_argument("--flaky-period", type=float, default=120.0, help="the flaky subscriber's normal/slow/absent cycle, seconds")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--png", metavar="OUT")
    ap.add_argument("--log", metavar="OUT", help="keep the recognizer's log here")
    args = ap.parse_args(argv)
    report = run_soak(args)
    ok_faults = report["faults_recovered_within_10s"] == report["faults_total"]
    print(f"crashed: {report['crashed'] or 'no'} (recognizer exit code {report['recognizer_exit_code']})")
    print(f"faults: {report['faults_total']}, recovered within 10 s: {report['faults_recovered_within_10s']}, slowest recovery {report['max_recovery_s']} s")
    for f in report["faults"]:
        print(f"  {f['kind']:8s} {f['seconds']:4.0f} s -> recovery {f['recovery_s'] if f['recovery_s'] is None else round(f['recovery_s'], 2)} s")
    p50, p95 = report["latency_p50_ms_outside_faults"], report["latency_p95_ms_outside_faults"]
    if p95 is not None:
        print(f"latency outside faults: p50 {p50:.1f} ms, p95 {p95:.1f} ms (2 frame periods = {2 * report['frame_period_ms']:.1f} ms)")
    if report["rss"]:
        r = report["rss"]
        print(f"RSS median per quarter (MiB): {r['q1_mib']:.1f}, {r['q2_mib']:.1f}, {r['q3_mib']:.1f}, {r['q4_mib']:.1f}; growth 2nd->last {100 * r['growth_q2_to_q4']:+.2f} %")
    print(f"messages: sent {report['messages_sent']}, reference subscriber got {report['messages_received_reference']}; "
          f"predictions: reference {report['predictions_reference']}, flaky {report['predictions_flaky']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=1))
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(report, Path(args.png))
    healthy = not report["crashed"] and ok_faults
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
