"""tools/face_geometry.py on one real clip and a few RAF-DB photos: RAF-DB's lower face is
shorter than the video's, and the offset brings the clip closer to RAF-DB's neutral faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_photo_faces_are_squashed_and_the_offset_closes_the_gap(shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / "video" / "mead" / "neutral.mp4"
    target = shared_data / "video" / "talking" / "trump_clip1.mp4"
    photos = shared_data / "rafdb" / "train" / "neutral"
    for p in (clip, target, photos):
        if not p.exists():
            pytest.skip(f"{p} is not there")
    out = tmp_path / "g.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "face_geometry.py"), "--video", str(clip), "--photos", str(photos), "--target", str(target),
                           "--step", "6", "--max-photos", "12", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["sources"]
    video, raf = rows[str(clip)], rows[str(photos)]
    assert video["faces"] > 5 and raf["faces"] > 5
    assert raf["eyes_to_mouth"] < video["eyes_to_mouth"] and raf["mouth_to_chin"] < video["mouth_to_chin"]
    assert video["z_rms_after_offset"] < video["z_rms"]
    assert "| source |" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "face_geometry.py"), "--video", str(tmp_path / "none.mp4"), "--target", str(target)],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr
