"""``realtime-fer serve``: the live page, end to end on a real clip.

One server runs for the module (``serve --source`` on a real clip, paced at its own rate, with
an access token and ``--publish`` so that the test also sees what the stream publishes). Headless
Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) opens the page; raw
WebSocket clients play a second viewer, a closed tab, a stalled viewer and a wrong token.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime_helpers import free_port, model_cli_args, video, wait_until

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--window-size=1280,860"]


class ServeProcess:
    """A ``realtime-fer serve`` subprocess, its stderr collected, its page URL parsed."""

    def __init__(self, args: list[str]) -> None:
        cmd = [sys.executable, "-m", "realtime_fer", "serve", *args]
        # SIGINT at its default even when the test run itself ignores it (a background job)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.err: list[str] = []
        self.out: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True).start()

    @staticmethod
    def _drain(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def url(self, within: float = 120.0) -> str:
        def found() -> str | None:
            assert self.proc.poll() is None, "".join(self.err)[-3000:]
            for line in self.err:
                if "page on http://" in line:
                    return line.split("page on ", 1)[1].split()[0]
            return None

        return wait_until(found, within, "serve to print its page URL", step=0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # Ctrl-C
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def base_url(url: str) -> str:
    """``http://host:port/`` without the token query."""
    return url.split("?", 1)[0]


@pytest.fixture(scope="module")
def server(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """``serve --source`` on the 20-s Pexels talking clip played 4 times (real time), a token,
    and a recorder of every prediction the stream publishes: {(face, frame): top}."""
    import zmq

    from realtime_fer.capture.reencode import reencode

    clip = tmp_path_factory.mktemp("serve") / "pexels_x4.mp4"
    reencode(video(shared_data, "WolfgangLanger_Pexels.mp4"), clip, 24.0, repeats=4)
    publish = f"tcp://127.0.0.1:{free_port()}"
    srv = ServeProcess(
        ["--source", str(clip), "--realtime", "--port", "0", "--token", TOKEN,
         "--publish", publish, "--duration", "170", *model_cli_args()]
    )
    published: dict[tuple[int, int], str] = {}
    stop = threading.Event()

    def record() -> None:
        from realtime_fer.publish import Prediction, Subscriber

        with Subscriber(publish, topics=["fer.cam0.face."], timeout=0.2) as sub:
            while not stop.is_set():
                msg = sub.recv()
                if isinstance(msg, Prediction):
                    published[(msg.face, msg.frame)] = msg.top

    rec = threading.Thread(target=record, daemon=True)
    rec.start()
    try:
        url = srv.url()
        srv.published = published  # type: ignore[attr-defined]
        srv.page = url  # type: ignore[attr-defined]
        srv.publish = publish  # type: ignore[attr-defined]
        yield srv
    finally:
        stop.set()
        code = srv.stop()
        rec.join(timeout=5)
        zmq  # noqa: B018 - imported to fail early without pyzmq
        err = "".join(srv.err)
        assert "Traceback" not in err, err[-3000:]
        assert code == 0, err[-3000:]


def read_view(packet: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack(">I", packet[:4])[0]
    return json.loads(packet[4 : 4 + n].decode("utf-8")), packet[4 + n :]


async def collect_views(url: str, count: int, timeout: float = 60.0) -> list[tuple[dict[str, Any], bytes]]:
    import aiohttp

    views: list[tuple[dict[str, Any], bytes]] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            while len(views) < count:
                msg = await ws.receive(timeout=timeout)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                views.append(read_view(msg.data))
    return views


def ws_url(page: str, token: str | None = TOKEN) -> str:
    return base_url(page).replace("http://", "ws://") + "ws" + (f"?token={token}" if token else "")


# --------------------------------------------------------------------------------------------
def test_headless_chromium_shows_each_face_with_the_streams_published_top(server: ServeProcess, tmp_path: Path) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(server.page)  # type: ignore[attr-defined]
        published: dict[tuple[int, int], str] = server.published  # type: ignore[attr-defined]

        def face_on_page() -> tuple[str, str, str, str] | None:
            for el in driver.find_elements(By.CSS_SELECTOR, ".face[data-face-id][data-top]"):
                key = (int(el.get_attribute("data-face-id")), int(el.get_attribute("data-frame")))
                if key in published:
                    return el.get_attribute("data-top"), published[key], el.text, el.get_attribute("data-frame")
            return None

        top, expected, text, frame = wait_until(face_on_page, 120, "a face on the page whose prediction was published", step=0.2)
        assert top == expected, f"page shows {top!r} for frame {frame}, the stream published {expected!r}"
        assert top in text.split("\n")[0], f"the emotion is not shown as text: {text!r}"
        stats = driver.execute_script("return window.ferStats")
        assert stats["frames"] >= 1 and stats["firstFrameMs"] is not None
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None
    canvas = image[80:600, 0:900]  # the video area (the header is above it)
    assert canvas.std() > 20, "the screenshot shows no video frame"
    assert len(np.unique(canvas.reshape(-1, 3)[::97], axis=0)) > 50, "the screenshot is nearly uniform"


def test_views_carry_a_frame_with_its_faces_predictions(server: ServeProcess) -> None:
    views = asyncio.run(collect_views(ws_url(server.page), 12))  # type: ignore[attr-defined]
    framed = [(h, jpeg) for h, jpeg in views if jpeg and h["fresh"]]
    assert len(framed) >= 10
    frames = [h["frame"] for h, _ in framed]
    assert frames == sorted(frames) and len(set(frames)) == len(frames), frames
    header, jpeg = framed[-1]
    assert jpeg[:2] == b"\xff\xd8"
    import cv2

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] <= 640
    assert header["image_size"][0] / header["image_size"][1] == pytest.approx(image.shape[1] / image.shape[0], rel=0.02)
    faced = [h for h, _ in framed if h["faces"]]
    assert faced, "no face in 12 views of a talking-head clip"
    face = faced[-1]["faces"][0]
    assert face["frame"] <= faced[-1]["frame"]  # a face's prediction is never from a later frame
    assert set(face["smoothed"]) >= {"happy", "sad", "neutral"}
    assert face["top"] in face["smoothed"]
    assert face["drivers"] and all("weight" in d and d["kind"] in ("region", "landmark", "blendshape") for d in face["drivers"])
    assert any("x" in d for d in face["drivers"]), "no driver placed on the face"
    assert len(face["points"]) == 468 * 2


def test_a_closed_viewer_and_a_stalled_one_do_not_stall_the_others(server: ServeProcess) -> None:
    import aiohttp

    host, port = base_url(server.page).split("//")[1].rstrip("/").rsplit(":", 1)  # type: ignore[attr-defined]
    # a stalled viewer: completes the WebSocket handshake, then never reads
    stalled = socket.create_connection((host, int(port)))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )

    async def scenario() -> tuple[list[int], list[int]]:
        async with aiohttp.ClientSession() as session:
            first = await session.ws_connect(ws_url(server.page))  # type: ignore[attr-defined]
            second = await session.ws_connect(ws_url(server.page))  # type: ignore[attr-defined]
            got_first: list[int] = []
            while len(got_first) < 3:  # the first viewer reads a little, then its tab closes
                header, jpeg = read_view((await first.receive(timeout=30)).data)
                if jpeg and header["fresh"]:
                    got_first.append(header["frame"])
            await first.close()
            got: list[int] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6.0:
                header, jpeg = read_view((await second.receive(timeout=10)).data)
                if jpeg and header["fresh"]:
                    got.append(header["frame"])
            await second.close()
            return got_first, got

    try:
        first, second = asyncio.run(scenario())
    finally:
        stalled.close()
    assert len(first) == 3
    # the paced clip is 25 fps and frames are published at up to 15 a second: the second viewer
    # keeps getting new frames for the whole 6 s although one viewer left and one never reads
    assert len(second) >= 12, second
    assert second == sorted(second) and second[-1] - second[0] >= 50, second


def test_a_wrong_or_missing_token_is_refused(server: ServeProcess) -> None:
    import aiohttp

    async def probe() -> list[int]:
        codes = []
        async with aiohttp.ClientSession() as session:
            for url in (base_url(server.page), base_url(server.page) + "?token=wrong", base_url(server.page) + "api/streams"):  # type: ignore[attr-defined]
                async with session.get(url) as resp:
                    codes.append(resp.status)
            for token in (None, "wrong"):
                try:
                    async with session.ws_connect(ws_url(server.page, token)):  # type: ignore[attr-defined]
                        codes.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    codes.append(exc.status)
            async with session.get(server.page) as resp:  # type: ignore[attr-defined]
                codes.append(resp.status)
                assert "realtime_fer" in await resp.text()
            async with session.get(base_url(server.page) + f"api/streams?token={TOKEN}") as resp:  # type: ignore[attr-defined]
                codes.append(resp.status)
                assert (await resp.json())["streams"] == ["cam0"]
        return codes

    assert asyncio.run(probe()) == [403, 403, 403, 403, 403, 200, 200]


def test_serve_connect_draws_a_recognizer_running_elsewhere(server: ServeProcess) -> None:
    other = ServeProcess(["--connect", server.publish, "--port", "0", "--duration", "60"])  # type: ignore[attr-defined]
    try:
        page = other.url(within=60)
        views = asyncio.run(collect_views(base_url(page).replace("http://", "ws://") + "ws", 8))
    finally:
        code = other.stop()
    framed = [h for h, jpeg in views if jpeg and h["fresh"]]
    assert len(framed) >= 6
    assert any(h["faces"] for h in framed)
    assert code == 0, "".join(other.err)[-2000:]


# --------------------------------------------------------------------------------------------
def test_serve_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "realtime_fer", "serve", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)

    missing = serve("--source", str(tmp_path / "nope.mp4"), "--port", "0")
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: "), missing.stderr
    assert "nope.mp4" in missing.stderr and "Traceback" not in missing.stderr
    both = serve("--connect", "tcp://127.0.0.1:5599", "--publish", "tcp://127.0.0.1:5598", "--port", "0")
    assert both.returncode == 2 and "--publish goes with --source" in both.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = serve("--connect", "tcp://127.0.0.1:5599", "--port", str(port), "--duration", "5")
    assert busy.returncode == 2 and f"cannot serve on 127.0.0.1:{port}" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr


def test_serving_beyond_loopback_without_a_token_warns(caplog: pytest.LogCaptureFixture) -> None:
    from realtime_fer.web.server import ServeOptions, is_loopback_host, warn_if_open

    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.1.2.3") and not is_loopback_host("kiosk.local")
    with caplog.at_level("WARNING"):
        assert warn_if_open(ServeOptions(host="0.0.0.0"))
        assert not warn_if_open(ServeOptions(host="0.0.0.0", token="t"))
        assert not warn_if_open(ServeOptions(host="127.0.0.1"))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "without --token" in warnings[0] and "watch the camera" in warnings[0]
    with pytest.raises(ValueError):
        ServeOptions(token="")


def test_several_streams_are_selectable(shared_data: Path) -> None:
    import aiohttp

    mead = shared_data / "video" / "mead"
    srv = ServeProcess(
        ["--source", f"left={mead / 'happy.mp4'}", "--source", f"right={mead / 'sad.mp4'}", "--port", "0", "--duration", "120", *model_cli_args()]
    )
    try:
        page = base_url(srv.url())

        async def scenario() -> list[tuple[str, list[str], bool]]:
            seen: list[tuple[str, list[str], bool]] = []
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 90
                while True:  # both streams have published a frame
                    async with session.get(page + "api/streams") as resp:
                        if (await resp.json())["streams"] == ["left", "right"]:
                            break
                    assert time.monotonic() < deadline, "the two streams never both showed up"
                    await asyncio.sleep(0.2)
                async with session.ws_connect(page.replace("http://", "ws://") + "ws?stream=right") as ws:
                    for want in ("right", "left"):
                        if want == "left":
                            await ws.send_str(json.dumps({"stream": "left"}))
                        while True:  # a status view may precede a stream's first frame; views of
                            # "right" already on their way may arrive after the switch
                            header, jpeg = read_view((await ws.receive(timeout=30)).data)
                            if want == "right":
                                assert header["stream"] == "right"
                            if header["stream"] == want and jpeg:
                                seen.append((header["stream"], header["streams"], bool(jpeg)))
                                break
            return seen

        seen = asyncio.run(scenario())
    finally:
        code = srv.stop()
    assert seen == [("right", ["left", "right"], True), ("left", ["left", "right"], True)]
    assert code == 0, "".join(srv.err)[-2000:]


def test_a_dropped_camera_shows_on_the_page_and_stalls_nothing(shared_data: Path, tmp_path: Path) -> None:
    import aiohttp

    from test_capture import MjpegServer, _ffmpeg
    from test_cli_run import _listening

    _ffmpeg()
    camera = MjpegServer(video(shared_data, "single_face.mp4"), free_port(), tmp_path / "ffmpeg.log")
    camera.start()
    srv: ServeProcess | None = None
    try:
        wait_until(lambda: _listening(camera.port), 10, "the MJPEG camera to listen")
        srv = ServeProcess(["--source", camera.url, "--port", "0", "--duration", "120", *model_cli_args()])
        page = base_url(srv.url())

        async def scenario() -> tuple[dict[str, Any], bool, int]:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(page.replace("http://", "ws://") + "ws") as ws:
                    while True:  # the camera's frames arrive
                        header, jpeg = read_view((await ws.receive(timeout=60)).data)
                        if jpeg and header["fresh"]:
                            break
                    camera.kill()  # the camera drops
                    while True:
                        header, jpeg = read_view((await ws.receive(timeout=60)).data)
                        if header["status"].get("state") in ("source_lost", "reconnecting"):
                            break
                    async with session.get(page + "api/streams") as resp:  # the server still answers
                        status = resp.status
                    return header, bool(jpeg), status

        header, has_image, api_status = asyncio.run(scenario())
    finally:
        camera.kill()
        code = srv.stop() if srv is not None else 0
    assert header["fresh"] is False and has_image, "the page lost its last picture when the camera dropped"
    assert api_status == 200
    assert code == 0, "".join(srv.err)[-2000:] if srv else ""

