#!/usr/bin/env python3
"""The live page, measured (issue 19): its first frame, capture-to-drawn latency, and the
recognizer's own fps and latency with no viewer and with three.

One ``realtime-fer serve --source CLIP --realtime --publish EP`` runs the clip at its own pace
(default: the 20-s Pexels talking clip of ../shared/data/video/pyfeat, played 5 times in a row:
``--repeats``). A subscriber on ``EP``
measures the recognizer in three phases of ``--phase`` seconds each:

1. no viewer;
2. three viewers: three WebSocket clients in another process, each receiving and decoding
   every view it is sent (JSON header + JPEG), as three open pages would;
3. one headless Chromium page (Debian's ``chromium`` + ``chromium-driver``): the page's own
   figures from ``window.ferStats``: time from opening to the first drawn frame, capture-to-
   drawn latency (median, p95; the browser and the recognizer share this host's clock), the
   part of it until the server sent the view (capture-to-sent), and the frames drawn per
   second. A screenshot is saved with ``--screenshot``.

Recognizer figures per phase: fps (frames with a prediction per second of wall time, from the
predictions' ``frame`` indices), capture-to-publish latency (``t_publish - t_capture``) median
and p95, and the heartbeat's fps. Prints a table and writes JSON with ``--json``::

    python tools/bench_serve.py [--clip PATH] [--phase 20] [--json out.json] [--screenshot page.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.publish import Prediction, Status, Subscriber  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """Every prediction and heartbeat of the stream, time-stamped on arrival."""

    def __init__(self, endpoint: str) -> None:
        self.preds: list[tuple[float, int, float]] = []  # (arrival, frame, latency s)
        self.fps: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._endpoint = endpoint
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with Subscriber(self._endpoint, topics=["fer.cam0.face.", "fer.cam0.status."], timeout=0.2) as sub:
            while not self._stop.is_set():
                msg = sub.recv()
                now = time.time()
                if isinstance(msg, Prediction) and msg.t_publish is not None:
                    self.preds.append((now, msg.frame, msg.t_publish - msg.t_capture))
                elif isinstance(msg, Status) and msg.event == "heartbeat":
                    self.fps.append((now, msg.fps))

    def window(self, t0: float, t1: float) -> dict:
        preds = [p for p in self.preds if t0 <= p[0] < t1]
        frames = sorted({p[1] for p in preds})
        lat = sorted(1000 * p[2] for p in preds)
        beats = [f for t, f in self.fps if t0 <= t < t1]
        return {
            "predicted_frames_per_s": round(len(frames) / (t1 - t0), 2),
            "latency_median_ms": round(statistics.median(lat), 1) if lat else None,
            "latency_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
            "heartbeat_fps": round(statistics.mean(beats), 2) if beats else None,
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)


def _viewers(url: str, n: int, seconds: float, out: "mp.Queue[dict]") -> None:
    """``n`` WebSocket viewers for ``seconds``, each decoding every view (another process)."""
    import aiohttp
    import cv2
    import numpy as np

    async def one() -> int:
        got = 0
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                t_end = time.monotonic() + seconds
                while time.monotonic() < t_end:
                    try:
                        msg = await ws.receive(timeout=max(0.1, t_end - time.monotonic()))
                    except asyncio.TimeoutError:
                        break
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    k = struct.unpack(">I", msg.data[:4])[0]
                    header = json.loads(msg.data[4 : 4 + k])
                    if len(msg.data) > 4 + k and header.get("fresh"):
                        cv2.imdecode(np.frombuffer(msg.data[4 + k :], np.uint8), cv2.IMREAD_COLOR)
                        got += 1
        return got

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(n))))

    out.put({"frames_received": asyncio.run(main())})


def _chromium(url: str, seconds: float, screenshot: Path | None) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--window-size=1280,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url)
        time.sleep(seconds)
        stats = driver.execute_script("return window.ferStats")
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    lat = sorted(stats["latencies"])
    sent = sorted(stats["sentLatencies"])
    return {
        "capture_to_sent_median_ms": round(statistics.median(sent), 1) if sent else None,
        "capture_to_sent_p95_ms": round(sent[int(0.95 * (len(sent) - 1))], 1) if sent else None,
        "first_frame_ms": round(stats["firstFrameMs"], 1) if stats["firstFrameMs"] is not None else None,
        "frames_drawn": stats["frames"],
        "drawn_fps": round(stats["pageFps"], 2) if stats.get("pageFps") else None,
        "capture_to_drawn_median_ms": round(statistics.median(lat), 1) if lat else None,
        "capture_to_drawn_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=ROOT / ".." / "shared" / "data" / "video" / "pyfeat" / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--repeats", type=int, default=5, help="play the clip this many times in a row (default 5)")
    ap.add_argument("--phase", type=float, default=20.0, help="seconds per phase (default 20)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--screenshot", type=Path)
    args = ap.parse_args()
    if not args.clip.is_file():
        print(f"error: clip not found: {args.clip}", file=sys.stderr)
        return 2
    import tempfile

    from realtime_fer.capture.reencode import reencode

    tmp = tempfile.TemporaryDirectory(prefix="bench_serve_")
    clip = Path(tmp.name) / "clip.mp4"
    import cv2

    fps = cv2.VideoCapture(str(args.clip)).get(cv2.CAP_PROP_FPS) or 25.0
    reencode(args.clip, clip, fps, repeats=args.repeats)
    publish = f"tcp://127.0.0.1:{_free_port()}"
    port = _free_port()
    cmd = [sys.executable, "-m", "realtime_fer", "serve", "--source", str(clip), "--realtime", "--port", str(port), "--publish", publish]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    rec = Recorder(publish)
    try:
        deadline = time.monotonic() + 120
        while not rec.preds:
            if proc.poll() is not None or time.monotonic() > deadline:
                print("error: serve did not start: " + "".join(err)[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(3.0)  # past the first windows
        url = f"http://127.0.0.1:{port}/"
        result: dict = {"clip": str(args.clip), "phase_s": args.phase}
        t0 = time.time()
        time.sleep(args.phase)
        result["no_viewer"] = rec.window(t0, time.time())
        ctx = mp.get_context("spawn")
        q: mp.Queue[dict] = ctx.Queue()
        viewers = ctx.Process(target=_viewers, args=(url.replace("http", "ws") + "ws", 3, args.phase, q))
        t0 = time.time()
        viewers.start()
        viewers.join(args.phase + 30)
        result["three_viewers"] = {**rec.window(t0 + 1.0, time.time()), **(q.get(timeout=5) if not q.empty() else {})}
        if shutil.which("chromium") and shutil.which("chromedriver"):
            t0 = time.time()
            result["chromium_page"] = _chromium(url, args.phase, args.screenshot)
            result["recognizer_with_chromium"] = rec.window(t0 + 2.0, time.time())
        else:
            result["chromium_page"] = "skipped: chromium/chromedriver not installed"
    finally:
        rec.stop()
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(timeout=40)
        tmp.cleanup()
    result["serve_stderr_tail"] = [line.rstrip() for line in err if not line.startswith(("W0000", "INFO:", "I0000"))][-8:]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
