"""``realtime-fer run`` / ``analyze`` / ``bench`` as a user runs them: subprocesses, exit codes,
messages, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime_fer.publish import Prediction, Status, Subscriber, message_from_dict
from runtime_helpers import free_port, model_cli_args, require_bundle, video, wait_until
from test_capture import MjpegServer

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtime_fer", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _assert_clean_error(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    require_bundle()
    missing = str(tmp_path / "nope.mp4")
    _assert_clean_error(_cli("run", "--source", missing, *model_cli_args()), "not found", "nope.mp4")
    _assert_clean_error(_cli("analyze", missing, "-o", str(tmp_path / "out.jsonl"), *model_cli_args()), "not found")
    _assert_clean_error(_cli("bench", missing, *model_cli_args()), "not found")


def test_bad_url_is_a_clear_error_and_quick() -> None:
    require_bundle()
    t0 = time.monotonic()
    r = _cli("run", "--source", f"http://127.0.0.1:{free_port()}/feed.mjpg", "--publish", "tcp://127.0.0.1:0", *model_cli_args())
    _assert_clean_error(r, "cannot open stream")
    assert time.monotonic() - t0 < 20
    _assert_clean_error(_cli("run", "--source", "ftp://example.com/x.mp4", *model_cli_args()), "unsupported URL scheme")


@pytest.mark.skipif(os.path.exists("/dev/video0"), reason="a camera is present")
def test_no_webcam_is_a_clear_error() -> None:
    require_bundle()
    _assert_clean_error(_cli("run", "--publish", "tcp://127.0.0.1:0", *model_cli_args()), "no camera found at index 0")


def test_corrupt_bundle_and_bad_config_are_clear_errors(tmp_path: Path, shared_data: Path) -> None:
    bundle = require_bundle()
    broken = tmp_path / "bundle"
    shutil.copytree(bundle.path, broken)
    onnx_file = broken / next(iter(bundle.emotions.values())).file
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
    clip = str(video(shared_data, "single_face.mp4"))
    _assert_clean_error(_cli("analyze", clip, "-o", str(tmp_path / "o.jsonl"), "--model", str(broken)), "corrupt")
    _assert_clean_error(_cli("run", "--source", clip, "--model", str(tmp_path / "absent")), "not found")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("publish:\n  endpont: tcp://127.0.0.1:0\n")
    _assert_clean_error(_cli("run", "--source", clip, "--config", str(cfg)), "unknown key", "endpont")


def test_analyze_writes_jsonl_that_decodes_with_the_schema(tmp_path: Path, shared_data: Path) -> None:
    bundle = require_bundle()
    out = tmp_path / "out.jsonl"
    r = _cli("analyze", str(video(shared_data, "single_face.mp4")), "--output", str(out), *model_cli_args())
    assert r.returncode == 0, r.stderr
    assert "summary: 72 frames" in r.stdout and "Traceback" not in r.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    messages = [message_from_dict(json.loads(line)) for line in lines]  # validates every line
    assert isinstance(messages[0], Status) and messages[0].event == "started"
    assert isinstance(messages[-1], Status) and messages[-1].event == "ended" and messages[-1].frames == 72
    preds = [m for m in messages if isinstance(m, Prediction)]
    assert len(preds) >= (72 - bundle.window_length) // bundle.hop and {p.face for p in preds} == {1}
    assert all(set(p.probabilities) == set(bundle.emotions) for p in preds)
    assert f"wrote {len(lines)} messages" in r.stdout


def test_bench_prints_the_stage_table(tmp_path: Path, shared_data: Path) -> None:
    require_bundle()
    out = tmp_path / "bench.json"
    r = _cli("bench", str(video(shared_data, "single_face.mp4")), "--max-frames", "30", "--json", str(out), *model_cli_args())
    assert r.returncode == 0, r.stderr
    for word in ("decode", "landmarks", "features", "inference", "publish", "bare Face Landmarker", "end-to-end", "load average"):
        assert word in r.stdout, word
    data = json.loads(out.read_text())
    assert data["frames"] == 30 and data["bare_fps"][0] > 0 and data["pipeline_fps"][0] > 0
    assert data["stages"]["landmarks"]["n"] == 30 and data["stages"]["decode"]["n"] == 29
    # the budget of features + models + publishing excludes the attributions, which are reported too
    assert 0 < data["attributions_ms_per_frame"] < data["after_landmarks_ms_per_frame"]
    assert abs(data["models_ms_per_frame"] + data["attributions_ms_per_frame"] - data["after_landmarks_ms_per_frame"]) < 1e-9
    assert "features + emotion models + publishing" in r.stdout and "pipelined" in r.stdout


def test_sigterm_stops_run_on_a_live_stream_cleanly(tmp_path: Path, shared_data: Path) -> None:
    require_bundle()
    server = MjpegServer(video(shared_data, "single_face.mp4"), free_port(), tmp_path / "ffmpeg.log")
    server.start()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = None
    try:
        wait_until(lambda: _listening(server.port), 10, "the MJPEG server to listen")
        with Subscriber(endpoint, topics=["fer.sig."], timeout=0.2) as sub:
            cmd = [sys.executable, "-m", "realtime_fer", "run", "--source", server.url, "--publish", endpoint, "--stream-id", "sig", *model_cli_args()]
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: _next_prediction(sub), 60, "a prediction from `realtime-fer run`")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
            ended = sub.wait_for(lambda m: isinstance(m, Status) and m.event == "ended", 5)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "summary:" in out and "ended: stopped" in out
        assert ended is not None and ended.frames > 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        server.kill()


def _listening(port: int) -> bool:
    """True once something listens on 127.0.0.1:port, checked without connecting (the ffmpeg
    server takes one client only, so a probe connection would use it up)."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:  # not Linux: give ffmpeg a moment instead
        time.sleep(1.0)
        return True
    for line in table.splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A = LISTEN
            return True
    return False


def _next_prediction(sub: Subscriber) -> bool:
    msg = sub.recv()
    return isinstance(msg, Prediction)


def test_a_full_disk_while_writing_results_is_a_clear_error(shared_data: Path) -> None:
    """The JSONL sink fails on the worker thread; the run stops and says why, in one line."""
    require_bundle()
    if not Path("/dev/full").exists():
        pytest.skip("needs Linux's /dev/full")
    r = _cli("analyze", str(video(shared_data, "single_face.mp4")), "--output", "/dev/full", *model_cli_args())
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: No space left on device"], r.stderr[-2000:]
