"""tools/gpu_check.sh on this machine, which has no GPU: its CPU fallback path runs end to end
(quick mode) and says which delegate and provider actually ran."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_helpers import require_bundle, video

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_falls_back_to_the_cpu_and_says_so(shared_data: Path, tmp_path: Path) -> None:
    require_bundle()
    if shutil.which("nvidia-smi") or Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA GPU is present: this test covers the CPU fallback path")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--quick", str(video(shared_data, "single_face.mp4"))],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    out = r.stdout
    assert "landmarker delegate: cpu" in out
    assert "onnxruntime provider: CPUExecutionProvider" in out
    assert "result: ran on the CPU only" in out
    bench = json.loads((tmp_path / "bench.json").read_text())
    streams = json.loads((tmp_path / "streams.json").read_text())
    assert bench["delegate"] == "cpu" and bench["provider"] == "CPUExecutionProvider" and bench["frames"] == 30
    assert streams["delegate"] == "cpu" and streams["provider"] == "CPUExecutionProvider" and streams["n_streams"] == 2
    assert (tmp_path / "gpu.yaml").read_text().count("delegate: gpu") == 1  # the GPU was asked for


def test_gpu_check_refuses_a_missing_video(tmp_path: Path) -> None:
    r = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--quick", str(tmp_path / "nope.mp4")],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OUT": str(tmp_path)}, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
