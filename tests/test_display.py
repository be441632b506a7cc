"""``realtime-fer run --show`` on a real X server: a virtual screen (Xvfb), the OpenCV window,
a screenshot of what it shows, and ``q`` pressed by a simulated user.

Needs Debian's ``xvfb`` and ``xdotool`` (``.ci/run`` installs them) and the ffmpeg of
imageio-ffmpeg (its ``x11grab`` device takes the screenshot).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from realtime_fer.pipeline.display import _BOX, _TOP
from runtime_helpers import free_port, model_cli_args, video

ROOT = Path(__file__).resolve().parents[1]
SCREEN = (1280, 800)


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A virtual X screen; yields its DISPLAY name."""
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages xvfb, xdotool; .ci/run installs them)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # Xvfb writes its display number once it is ready
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _screenshot(display: str, path: Path) -> np.ndarray:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "x11grab", "-video_size", f"{SCREEN[0]}x{SCREEN[1]}", "-i", display, "-frames:v", "1", str(path)]
    subprocess.run(cmd, check=True, timeout=30)
    image = cv2.imread(str(path))
    assert image is not None, f"no screenshot at {path}"
    return image


def _pixels_near(image: np.ndarray, bgr: tuple[int, int, int], tol: int = 12) -> int:
    return int(np.all(np.abs(image.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=2).sum())


def test_show_opens_a_window_with_the_overlay_and_q_stops_the_run(xvfb: str, shared_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DISPLAY": xvfb}
    config = tmp_path / "realtime.yaml"
    config.write_text("capture:\n  realtime: true\n")  # the 20 s video plays at its own pace, after warm-up
    cmd = [sys.executable, "-m", "realtime_fer", "run", "--source", str(video(shared_data, "WolfgangLanger_Pexels.mp4")), "--show"]
    cmd += ["--config", str(config), "--publish", f"tcp://127.0.0.1:{free_port()}", *model_cli_args()]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--name", "realtime-fer"], env=env, capture_output=True, text=True, timeout=90)
        window = found.stdout.split()[0]
        # wait until a prediction is on screen: the emotion bars use the top emotion's colour
        shot = tmp_path / "screen.png"
        deadline = time.monotonic() + 90  # warm-up may compile the Numba kernels first (cold cache)
        while True:
            image = _screenshot(xvfb, shot)
            if _pixels_near(image, _TOP) > 50 or time.monotonic() > deadline or proc.poll() is not None:
                break
        assert proc.poll() is None, proc.communicate()
        geometry = subprocess.run(["xdotool", "getwindowgeometry", window], env=env, capture_output=True, text=True, timeout=10).stdout
        assert "640x360" in geometry, geometry  # sized to the frame once the first one arrived
        assert _pixels_near(image, _BOX) > 300, "no face box in the window"
        assert _pixels_near(image, _TOP) > 50, "no emotion bars in the window"
        lit = image[:360, :640]
        assert lit.std() > 20, "the window shows no video frame"
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env, check=True, timeout=10)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "ended: stopped" in out
    assert "Traceback" not in err
