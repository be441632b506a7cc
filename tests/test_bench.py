"""``realtime-fer bench`` on what the other bench tests (test_cli_run.py, test_multistream.py) do
not cover: a live source, and live cameras emulated from a file (``--streams N --realtime``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runtime_helpers import free_port, model_cli_args, require_bundle, video, wait_until
from test_capture import MjpegServer
from test_cli_run import _listening

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtime_fer", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_bench_on_a_live_stream(shared_data: Path, tmp_path: Path) -> None:
    """A real MJPEG-over-HTTP stream at the clip's own rate: the recognizer runs for the given
    duration, then the bare landmarker over the frames it processed."""
    require_bundle()
    server = MjpegServer(video(shared_data, "single_face.mp4"), free_port(), tmp_path / "ffmpeg.log")
    server.start()
    try:
        wait_until(lambda: _listening(server.port), 10, "the MJPEG server to listen")
        out = tmp_path / "live.json"
        r = _cli("bench", server.url, "--duration", "3", "--json", str(out), *model_cli_args())
    finally:
        server.kill()
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["live"] is True and data["frames"] > 10 and data["predictions"] > 0
    assert data["latency"]["n"] > 0 and data["bare_fps"] and data["bare_fps"][0] > 0
    assert "live capture->publish p95" in r.stdout
