"""An RTSP camera on loopback: ffmpeg pushes H.264 to an RTSP relay (Debian's
``rtsp-server-perl``; ``.ci/run`` installs it) and the recognizer pulls from it like from an IP
camera, over UDP (the relay sends RTP over UDP only)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from realtime_fer.capture import CaptureOptions, open_source
from realtime_fer.errors import SourceError
from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
from realtime_fer.publish import Prediction, Status
from runtime_helpers import bundle_arg, free_port, require_bundle, video, wait_until


class RtspCamera:
    """``rtsp-server-perl`` relaying an ffmpeg H.264 push of a looping video."""

    def __init__(self, clip: Path, log_dir: Path) -> None:
        import imageio_ffmpeg

        self.client_port, source_port = free_port(), free_port()
        self.url = f"rtsp://127.0.0.1:{self.client_port}/live"
        rtp_base = random.randrange(20000, 40000, 2)
        relay = ["rtsp-server-perl", "--clientport", str(self.client_port), "--serverport", str(source_port), "--client_listen_address", "127.0.0.1",
                 "--source_listen_address", "127.0.0.1", "--rtp_start_port", str(rtp_base), "-l", "2"]
        push = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-an",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-f", "rtsp", f"rtsp://127.0.0.1:{source_port}/live"]
        self._log = open(log_dir / "rtsp.log", "ab")  # noqa: SIM115 - closed in stop()
        self.relay = subprocess.Popen(relay, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.push: subprocess.Popen[bytes] | None = None
        try:
            # the relay (Perl, Moose) may take seconds to start on a busy machine: push only once it listens
            wait_until(lambda: self.relay.poll() is None and _listening(source_port), 30, "the RTSP relay to listen")
            self.push = subprocess.Popen(push, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        except BaseException:
            self.stop()
            raise

    def open(self, options: CaptureOptions):  # noqa: ANN201
        """The opened stream, or None while it is not up yet (for :func:`wait_until`)."""
        assert self.push is not None and self.push.poll() is None, f"the ffmpeg push exited ({self.push.returncode if self.push else None})"
        try:
            return open_source(self.url, options)
        except SourceError:
            return None

    def stop(self) -> None:
        for proc in (self.push, self.relay):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def rtsp_camera(shared_data: Path, tmp_path: Path) -> Iterator[RtspCamera]:
    if shutil.which("rtsp-server-perl") is None:
        pytest.skip("rtsp-server-perl not installed (Debian package rtsp-server-perl; .ci/run installs it)")
    pytest.importorskip("imageio_ffmpeg")
    camera = RtspCamera(video(shared_data, "single_face.mp4"), tmp_path)
    try:
        yield camera
    finally:
        camera.stop()


UDP = CaptureOptions(queue_size=1, rtsp_transport="udp", open_timeout_s=3.0)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_recognizer_pulls_an_rtsp_camera(rtsp_camera: RtspCamera) -> None:
    source = wait_until(lambda: rtsp_camera.open(UDP), 30, "the RTSP stream to open")
    assert source.kind == "stream" and (source.width, source.height) == (640, 360)
    source.close()

    sink = ListSink()
    config = replace(RuntimeConfig(model=bundle_arg(), device="cpu"), capture=UDP)

    def on_frame(frame, result) -> None:  # noqa: ANN001
        if sum(isinstance(m, Prediction) for m in sink.messages) >= 5:
            rec.stop()

    rec = open_recognizer(rtsp_camera.url, config, [sink], bundle=require_bundle(), on_frame=on_frame)
    summary = rec.run()
    predictions = [m for m in sink.messages if isinstance(m, Prediction)]
    assert len(predictions) >= 5 and {p.face for p in predictions} == {1}
    assert all(0.0 <= v <= 1.0 for p in predictions for v in p.probabilities.values())
    started = [m for m in sink.messages if isinstance(m, Status) and m.event == "started"]
    assert "stream" in started[0].detail and summary.end_reason == "stopped"


def test_rtsp_over_tcp_to_a_udp_only_relay_fails_with_a_clear_error(rtsp_camera: RtspCamera) -> None:
    wait_until(lambda: rtsp_camera.open(UDP), 30, "the RTSP stream to open").close()  # the stream is up...
    with pytest.raises(SourceError, match="cannot open stream"):  # ...but not over TCP
        open_source(rtsp_camera.url, replace(UDP, rtsp_transport="tcp"))
