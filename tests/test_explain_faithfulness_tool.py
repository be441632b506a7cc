"""``tools/explain_faithfulness.py`` on two real talking clips: by default it measures what the
stream publishes (baseline moved along what each network cannot see and talking as the face
does), which cancels less than the plain person baseline; bad input is one error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fer_testdata import link, session_cache

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "explain_faithfulness.py"


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faith_clips") / "mead2"
    for name in ("happy.mp4", "surprise.mp4"):
        link(shared_data / "video" / "mead" / name, folder / name)
    return {"folder": folder, "cache": session_cache(tmp_path_factory)}


def test_default_is_the_streams_baseline_and_cancels_less(clips: dict[str, Path], tmp_path: Path) -> None:
    out_default, out_plain = tmp_path / "default.json", tmp_path / "plain.json"
    common = ["--data", clips["folder"], "--cache", clips["cache"], "--max-windows", "4"]
    p = _run(*common, "--output", out_default, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    q = _run(*common, "--no-visible", "--baseline-motion", "none", "--output", out_plain, cwd=tmp_path)
    assert q.returncode == 0, q.stderr[-2000:]
    moved, plain = json.loads(out_default.read_text()), json.loads(out_plain.read_text())
    assert moved["visible"] is True and moved["baseline_motion"] == "speech"
    assert plain["visible"] is False and plain["baseline_motion"] == "none"
    for emotion in ("happy", "surprise"):
        a = moved["folders"]["mead2"]["emotions"][emotion]
        b = plain["folders"]["mead2"]["emotions"][emotion]
        assert a["n_windows"] == b["n_windows"] > 10
        # the measures hold with the moved baseline: top 3 deleted beats 3 random items
        assert a["faithfulness"]["deletion"]["top_beats_random"][a["faithfulness"]["ks"].index(3)] >= 0.5
    happy_moved = moved["folders"]["mead2"]["emotions"]["happy"]["cancellation"]["median_top5_over_sum_regions"]
    happy_plain = plain["folders"]["mead2"]["emotions"]["happy"]["cancellation"]["median_top5_over_sum_regions"]
    assert happy_moved < happy_plain, (happy_moved, happy_plain)  # 2.6 vs 5.5 on 2026-12-06 (40 windows)


def test_missing_folder_is_one_error_line(tmp_path: Path) -> None:
    p = _run("--data", tmp_path / "nope", "--output", tmp_path / "x.json", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "Traceback" not in p.stderr
