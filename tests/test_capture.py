"""Capture stage on real videos, a real still image and a live MJPEG stream served by ffmpeg."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from realtime_fer.capture import CaptureEvent, CaptureOptions, CaptureThread, Frame, open_source, parse_source, redact_url
from realtime_fer.errors import SourceError

VIDEO = "video/pyfeat/single_face.mp4"  # 72 frames, 640x360, 30 fps
IMAGE = "images/pyfeat/single_face.jpg"


def _drain_events(cap: CaptureThread) -> list[CaptureEvent]:
    out = []
    while True:
        try:
            out.append(cap.events.get_nowait())
        except queue.Empty:
            return out


# --------------------------------------------------------------------------------------------
# parsing and opening
# --------------------------------------------------------------------------------------------
def test_parse_source_kinds() -> None:
    assert parse_source(0).kind == "camera" and parse_source("1").target == 1
    assert parse_source("rtsp://cam.local/stream").kind == "stream"
    assert parse_source("HTTP://127.0.0.1:8080/x.mjpg").kind == "stream"
    assert parse_source("clip.mp4").kind == "file"
    assert parse_source("face.JPG").kind == "image"
    assert parse_source("file:///tmp/a.mov").target == "/tmp/a.mov"
    assert redact_url("rtsp://user:secret@cam/x") == "rtsp://user:***@cam/x"
    assert "***" in parse_source("rtsp://user:secret@cam/x").display
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        parse_source("ftp://example.com/a.mp4")
    with pytest.raises(SourceError):
        parse_source("  ")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "nope.png"))
    assert time.monotonic() - t0 < 2


def test_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read"):
        open_source(bad)
    bad_img = tmp_path / "broken.jpg"
    bad_img.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SourceError, match="cannot decode image"):
        open_source(bad_img)


def test_bad_url_fails_quickly() -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(f"http://127.0.0.1:{port}/x.mjpg", CaptureOptions(open_timeout_s=2, read_timeout_s=2))
    assert time.monotonic() - t0 < 5


@pytest.mark.skipif(os.path.exists("/dev/video0"), reason="a camera is present")
def test_missing_camera_message() -> None:
    with pytest.raises(SourceError) as err:
        open_source("0")
    msg = str(err.value)
    assert "no camera found at index 0" in msg and "--source" in msg and "URL" in msg


# --------------------------------------------------------------------------------------------
# files and images
# --------------------------------------------------------------------------------------------
def test_file_delivers_every_frame_in_order_then_ends(shared_data: Path) -> None:
    events: list[CaptureEvent] = []
    source = open_source(shared_data / VIDEO)
    assert not source.is_live and source.kind == "file"
    assert (source.width, source.height) == (640, 360) and source.fps == pytest.approx(30.0)
    # a queue of 4 and a consumer that is momentarily slow: the reader must wait, not drop
    cap = CaptureThread(source, CaptureOptions(file_queue_size=4), on_event=events.append)
    frames: list[Frame] = []
    with cap:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = cap.get(timeout=10)
            if frame is None:
                break
            frames.append(frame)
            if frame.index == 10:
                time.sleep(0.3)
    assert len(frames) == 72
    assert [f.index for f in frames] == list(range(72))
    assert all(f.image.shape == (360, 640, 3) and f.image.dtype.name == "uint8" for f in frames)
    assert all(b.t_capture > a.t_capture for a, b in zip(frames, frames[1:]))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    assert abs(frames[0].timestamp - time.time()) < 60
    pos = [f.source_pos_ms for f in frames]
    assert pos[0] == pytest.approx(0.0) and all(b > a for a, b in zip(pos, pos[1:]))  # type: ignore[operator]
    assert pos[-1] == pytest.approx(71 * 1000 / 30, abs=1)
    assert cap.dropped == 0 and cap.frames_read == 72
    assert cap.get(timeout=0.1) is None and cap.ended
    assert [e.kind for e in events] == ["started", "ended"] and events[-1].detail == "end of file"
    assert cap.end_reason == "end of file" and not cap.is_alive()


def test_realtime_paces_at_file_fps(shared_data: Path) -> None:
    cap = CaptureThread(open_source(shared_data / VIDEO), CaptureOptions(realtime=True))
    with cap:
        t0 = time.monotonic()
        frames = [cap.get(timeout=5) for _ in range(31)]
        elapsed = time.monotonic() - t0
    assert all(f is not None for f in frames)
    # 30 frame periods at 30 fps = 1 s; generous bounds
    assert 0.8 < elapsed < 5.0
    span = frames[-1].timestamp - frames[0].timestamp  # type: ignore[union-attr]
    assert 0.8 < span < 5.0


def test_still_image_yields_one_frame(shared_data: Path) -> None:
    source = open_source(str(shared_data / IMAGE))
    assert source.kind == "image" and not source.is_live
    with CaptureThread(source) as cap:
        frames = list(cap)
    assert len(frames) == 1 and frames[0].index == 0
    assert frames[0].image.shape == (source.height, source.width, 3)
    assert [e.kind for e in _drain_events(cap)] == ["started", "ended"]


def test_stop_is_prompt_while_reader_waits_on_full_queue(shared_data: Path) -> None:
    cap = CaptureThread(open_source(shared_data / VIDEO), CaptureOptions(file_queue_size=1))
    cap.start()
    time.sleep(0.3)  # the reader has filled the queue and is waiting
    assert cap.is_alive()
    t0 = time.monotonic()
    assert cap.stop(timeout=3) is True
    assert time.monotonic() - t0 < 1.5
    assert cap.get(timeout=0.1) is None
    assert cap.end_reason == "stopped"


# --------------------------------------------------------------------------------------------
# a live MJPEG stream over HTTP, served by ffmpeg on loopback
# --------------------------------------------------------------------------------------------
def _ffmpeg() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


class MjpegServer:
    """ffmpeg playing a video in a loop at its own rate as an MJPEG-over-HTTP stream."""

    def __init__(self, video: Path, port: int, log_path: Path) -> None:
        self.video, self.port, self.log_path = video, port, log_path
        self.url = f"http://127.0.0.1:{port}/feed.mjpg"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video)]
        cmd += ["-an", "-f", "mpjpeg", "-q:v", "8", "-listen", "1", self.url]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def mjpeg_server(shared_data: Path, tmp_path: Path) -> Iterator[MjpegServer]:
    _ffmpeg()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = MjpegServer(shared_data / VIDEO, port, tmp_path / "ffmpeg.log")
    try:
        yield server
    finally:
        server.resume()
        server.kill()


def _open_when_ready(url: str, options: CaptureOptions, within: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        try:
            return open_source(url, options)
        except SourceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_event(cap: CaptureThread, kind: str, within: float, seen: list[CaptureEvent]) -> CaptureEvent:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            event = cap.events.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(event)
        if event.kind == kind:
            return event
    raise AssertionError(f"no {kind!r} event within {within} s; saw {[e.kind for e in seen]}")


def test_live_stream_drops_stale_frames_and_survives_a_restart(mjpeg_server: MjpegServer) -> None:
    options = CaptureOptions(queue_size=2, open_timeout_s=2, read_timeout_s=2, reconnect_initial_s=0.2, reconnect_max_s=1.0)
    mjpeg_server.start()
    source = _open_when_ready(mjpeg_server.url, options)
    assert source.is_live and source.kind == "stream" and (source.width, source.height) == (640, 360)
    cap = CaptureThread(source)
    seen: list[CaptureEvent] = []
    cap.start()
    try:
        # 1. a slow consumer (10 fps against a 30 fps stream): stale frames are dropped, counted
        frames = []
        for _ in range(8):
            frames.append(cap.get(timeout=5))
            time.sleep(0.1)
        assert all(f is not None and f.source_pos_ms is None for f in frames)
        assert cap.dropped > 0
        indices = [f.index for f in frames]  # type: ignore[union-attr]
        assert indices == sorted(indices) and indices[-1] - indices[0] > len(indices)  # gaps = drops

        # 2. the server dies: the capture reports it and keeps trying; the consumer keeps running
        mjpeg_server.kill()
        _wait_event(cap, "source_lost", 10, seen)
        _wait_event(cap, "reconnecting", 5, seen)
        with pytest.raises(queue.Empty):
            for _ in range(10):  # at most queue_size stale frames, then nothing
                cap.get(timeout=0.3)
        _wait_event(cap, "reconnecting", 5, seen)  # a second attempt fails too (backoff)

        # 3. the server comes back on the same port: frames flow again, same thread
        mjpeg_server.start()
        recovered = _wait_event(cap, "recovered", 15, seen)
        fresh = []
        deadline = time.monotonic() + 10
        while len(fresh) < 5 and time.monotonic() < deadline:
            frame = cap.get(timeout=5)
            assert frame is not None
            if frame.timestamp >= recovered.timestamp:
                fresh.append(frame)
        assert len(fresh) == 5 and cap.is_alive() and cap.reconnects == 1
        assert fresh[0].index > frames[-1].index  # type: ignore[union-attr]
        delays = [e.delay_s for e in seen if e.kind == "reconnecting"]
        assert delays[0] == pytest.approx(0.2) and delays[1] == pytest.approx(0.4)

        # 4. stop() returns promptly even while the reader is blocked in a stalled read
        mjpeg_server.pause()
        time.sleep(0.3)
        t0 = time.monotonic()
        cap.stop(timeout=0.5)
        assert time.monotonic() - t0 < 1.5
        assert cap.get(timeout=0.1) is None
        cap.join(timeout=options.read_timeout_s + 3)  # the read times out and the thread exits
        assert not cap.is_alive()
    finally:
        cap.stop(timeout=0.5)
        mjpeg_server.resume()
        mjpeg_server.kill()


def test_gives_up_after_max_reconnect_attempts(mjpeg_server: MjpegServer) -> None:
    options = CaptureOptions(open_timeout_s=1, read_timeout_s=1, reconnect_initial_s=0.1, reconnect_max_s=0.2, max_reconnect_attempts=2)
    mjpeg_server.start()
    cap = CaptureThread(_open_when_ready(mjpeg_server.url, options))
    seen: list[CaptureEvent] = []
    with cap:
        assert cap.get(timeout=5) is not None
        mjpeg_server.kill()
        ended = _wait_event(cap, "ended", 10, seen)
        deadline = time.monotonic() + 5
        while cap.get(timeout=5) is not None:  # remaining stale frames, then the end
            assert time.monotonic() < deadline
    assert "gave up" in ended.detail and [e.kind for e in seen].count("reconnecting") == 2
    assert cap.ended and not cap.is_alive()


def test_capture_options_load_from_config() -> None:
    from realtime_fer.config_io import from_dict
    from realtime_fer.errors import ConfigError

    opts = from_dict(CaptureOptions, {"queue_size": 1, "realtime": True, "max_reconnect_attempts": 3}, "capture")
    assert opts.queue_size == 1 and opts.realtime and opts.max_reconnect_attempts == 3
    with pytest.raises(ConfigError, match="reconnect"):
        from_dict(CaptureOptions, {"reconnect_initial_s": 10.0}, "capture")
