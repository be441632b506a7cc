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


def _emulated(path: Path, **kw: object):  # noqa: ANN202
    from realtime_fer.capture import CaptureOptions, CaptureThread, open_source

    options = CaptureOptions(realtime=True, emulate_live=True, **kw)  # type: ignore[arg-type]
    source = open_source(str(path), options)
    return CaptureThread(source, options), float(source.fps)


def test_an_emulated_live_camera_drops_frames_instead_of_queueing_them(shared_data: Path) -> None:
    """A consumer three times slower than the clip's 30 fps: it gets fewer frames, each the
    newest (none waits), spread evenly, stamped on the clip's own time line."""
    import time

    cap, fps = _emulated(video(shared_data, "single_face.mp4"))
    period = 1.0 / fps
    taken: list[tuple[int, float, float]] = []  # index, t_capture, age when taken
    with cap:
        while (frame := cap.get(timeout=5)) is not None:
            taken.append((frame.index, frame.t_capture, time.perf_counter() - frame.t_capture))
            assert frame.source_pos_ms is None  # like a camera: stamped with its capture time
            time.sleep(3 * period)
    indices = [t[0] for t in taken]
    assert cap.frames_read == 72 and cap.dropped > 30
    assert len(taken) + cap.dropped == 72  # every frame was either processed or dropped, none is left waiting
    # never queued: each frame is taken within a few periods of its capture (a queue would age
    # by two periods per frame taken here, to over 1.5 s = 45 periods by the end of the clip;
    # the bound leaves room for a busy machine's scheduling delays)
    assert max(t[2] for t in taken) < 10 * period
    gaps = [b - a for a, b in zip(indices, indices[1:])]
    # spread evenly: mostly every 3rd or 4th frame, no long holes (a loaded host may shift one take)
    assert sum(2 <= g <= 5 for g in gaps) >= 0.8 * len(gaps) and max(gaps) <= 10, gaps
    stamps = [t[1] - taken[0][1] for t in taken]
    for i, s in zip(indices, stamps):  # windows in seconds: the clip's time line survives the drops
        assert abs(s - (i - indices[0]) * period) < 0.5 * period


def test_a_file_read_as_a_file_keeps_every_frame(shared_data: Path) -> None:
    """The same clip paced but not emulating a camera: no frame dropped, file positions kept."""
    from realtime_fer.capture import CaptureOptions, CaptureThread, open_source

    options = CaptureOptions(realtime=True)
    cap = CaptureThread(open_source(str(video(shared_data, "single_face.mp4")), options), options)
    with cap:
        frames = list(cap)
    assert len(frames) == 72 and cap.dropped == 0 and frames[5].source_pos_ms is not None


def test_an_overloaded_live_recognizer_keeps_windows_in_seconds(shared_data: Path) -> None:
    """The recognizer on an emulated camera, its landmarker slowed to under a third of the clip's
    rate (a sleep before each detection): it processes
    fewer frames, yet the face's first decisions come after the same source time as when it keeps
    up (a partial window after 0.4 s, a full one after the model's window span)."""
    import time

    from realtime_fer.capture import CaptureOptions
    from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
    from realtime_fer.pipeline.pacing import PacingOptions
    from runtime_helpers import bundle_arg

    bundle = require_bundle()
    span = bundle.window.span_s

    def first_decisions(slow_s: float) -> tuple[int, int, float, float, list[int]]:
        seen: list[tuple[int, int, list]] = []

        def on_frame(frame, result) -> None:  # noqa: ANN001
            seen.append((frame.index, result.timestamp_ms, [p.partial for p in result.predictions]))

        # the reference run (no sleep) unpaced, so that on a busy test host it still drops nothing
        config = RuntimeConfig(model=bundle_arg(), device="cpu", capture=CaptureOptions(realtime=True, emulate_live=True), pacing=PacingOptions(enabled=slow_s > 0))
        rec = open_recognizer(str(video(shared_data, "single_face.mp4")), config, [ListSink()], bundle=bundle, on_frame=on_frame)
        detect = rec.processor.detect

        def slow_detect(frame, **kw):  # noqa: ANN001, ANN003, ANN202 - a landmarker slower than the camera, as on a busy host
            time.sleep(slow_s)
            return detect(frame, **kw)

        rec.processor.detect = slow_detect  # type: ignore[method-assign]
        summary = rec.run()
        t0 = seen[0][1]
        first_partial = next(ts for _, ts, parts in seen if True in parts) - t0
        first_full = next(ts for _, ts, parts in seen if False in parts) - t0
        gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:])]
        return summary.frames, summary.dropped, first_partial / 1000.0, first_full / 1000.0, gaps

    frames_ok, dropped_ok, partial_ok, full_ok, _ = first_decisions(0.0)
    frames_slow, dropped_slow, partial_slow, full_slow, gaps = first_decisions(0.1)
    assert dropped_slow > 30 and frames_slow + dropped_slow == 72 and frames_slow < frames_ok
    inner = gaps[:-1]  # the last frame of the file ends the stream: nothing newer replaces it
    # spread evenly: mostly every 3rd or 4th frame or further apart (the 0.1 s landmarker plus the
    # pacing's slack, which grows with the host's load), no long holes: none over 10 frames or three
    # times the typical gap, whichever is more (on a host loaded by two other jobs the pacing
    # settled at every 10th frame, and one take came 11 frames after the last: [6, 5, 4, 10, 11, 10, 10, 10])
    typical = sorted(inner)[len(inner) // 2]
    assert sum(g >= 2 for g in inner) >= 0.8 * len(inner) and max(inner) <= max(10, 3 * typical), str(gaps)
    period_slow = sum(inner) / len(inner) / 30  # the delivered frame period
    assert abs(partial_ok - 0.4) < 0.1 and abs(full_ok - span) < 0.1  # the partial and the full window, in source time
    assert partial_ok - 0.05 <= partial_slow <= partial_ok + 2 * period_slow  # the same, a processed frame or two later
    assert full_ok - 0.05 <= full_slow <= full_ok + 2 * period_slow


def test_bench_streams_realtime_emulates_live_cameras(shared_data: Path, tmp_path: Path) -> None:
    """``bench --streams 2 --realtime``: per stream frames delivered and dropped, latency in ms
    and in delivered frame periods, time to the first decision, the spread of the processed
    frames; fairness between the streams."""
    require_bundle()
    out = tmp_path / "live.json"
    r = _cli("bench", str(video(shared_data, "single_face.mp4")), "--streams", "2", "--realtime", "--json", str(out), *model_cli_args())
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["realtime"] is True and data["n_streams"] == 2 and 0 < data["fairness"] <= 1
    for s in data["streams"]:
        assert s["frames"] + s["dropped"] == 72 and s["frames"] > 0
        assert 0 < s["fps"] <= 31 and s["latency"]["n"] > 0 and s["latency_p95_periods"] > 0
        assert 0.3 < s["first_decision_s"] < 2.4
        assert s["gap"]["mean"] >= 1 and s["gap"]["max"] >= 1
    assert "emulated live cameras" in r.stdout and "fairness" in r.stdout
