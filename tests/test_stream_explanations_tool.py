"""``tools/stream_explanations.py``: issue 22's measure on the messages the stream publishes.
The measure itself on hand-made messages (a list that cancels, one that does not), then the
real tool on a real clip through ``realtime-fer analyze``; bad input is one error line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fer_testdata import link

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "stream_explanations.py"


def _tool():
    spec = importlib.util.spec_from_file_location("stream_explanations", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prediction(top: str | None, items: list[tuple[str, float]], total: float) -> str:
    attributions = {top: {"top": [{"region" if " " in n else "blendshape": n, "weight": w} for n, w in items], "sum": total}} if top else {}
    return json.dumps({"type": "prediction", "top": top, "attributions": attributions})


def test_measure_reads_cancellation_and_facs_from_messages() -> None:
    tool = _tool()
    lines = [
        json.dumps({"type": "status", "state": "running"}),
        # evidence: the smile blendshapes carry the sum
        _prediction("happy", [("mouthSmileLeft", 1.0), ("mouthSmileRight", 0.9), ("chin", 0.1)], 2.0),
        # cancellation: two large opposite weights below the lip, small sum, no FACS item in the top 3
        _prediction("happy", [("lower lip", 10.0), ("below the lower lip", -9.0), ("chin", 0.5), ("left cheek", 0.2)], 1.0),
        _prediction(None, [], 0.0),
        _prediction("surprise", [("left inner brow", 0.5), ("jawOpen", 0.4)], 1.0),
    ]
    m = tool.measure_messages(lines, label="happy")
    assert m["predictions"] == 4 and m["tops"] == {"happy": 2, "none": 1, "surprise": 1}
    assert m["explained"] == 3
    # top5/sum: 2.0/2.0, 19.7/1.0 (cancelling), 0.9/1.0 -> median 1.0
    assert m["top5_over_sum_median"] == pytest.approx(1.0)
    assert m["facs_top3"] == pytest.approx(2 / 3)  # happy (smile), not happy (lip), surprise (brow)
    assert m["facs_label_top3"] == pytest.approx(1 / 3)  # only the first names happy's FACS items


def test_real_clip_through_analyze(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mead1"
    link(shared_data / "video" / "mead" / "happy.mp4", folder / "happy.mp4")
    out = tmp_path / "stream.json"
    p = subprocess.run([sys.executable, str(TOOL), str(folder), "--output", str(out)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    clip = json.loads(out.read_text())["clips"][str(folder / "happy.mp4")]
    assert clip["label"] == "happy" and clip["predictions"] > 20
    assert clip["tops"].get("happy", 0) > clip["predictions"] / 2
    # the shipped model's published happy explanations read as evidence and name a smile region
    # or blendshape (1.20 and 1.00 with model 0.10 on 2026-12-07; 1.51 and 1.00 with model 0.11 on 2026-12-08)
    assert clip["top5_over_sum_median"] < 2.0
    assert clip["facs_top3"] >= 0.7


def test_missing_clip_is_one_error_line(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "nope.mp4")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "Traceback" not in p.stderr


def test_unreadable_clip_is_listed_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "happy.mp4"
    bad.write_bytes(b"not a video at all")
    out = tmp_path / "stream.json"
    p = subprocess.run([sys.executable, str(TOOL), str(bad), "--output", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "error" in json.loads(out.read_text())["clips"][str(bad)]
