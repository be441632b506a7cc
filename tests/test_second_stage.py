"""The second-stage measurement (tools/second_stage.py): its decision rule, and one real run on
a small image set and two real clips."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fer_testdata import small_video_recipe

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "second_stage.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("second_stage_tool", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pair_decides_only_between_its_two_leading_emotions() -> None:
    """Windows: (0) fear and surprise lead, both above threshold; (1) surprise leads, fear is
    second but below its threshold; (2) surprise and happy lead; (3) nothing above threshold;
    (4) contempt (withheld) is highest, fear and surprise follow."""
    tool = _tool()
    probs = {
        "contempt": np.array([0.0, 0.0, 0.0, 0.0, 0.9]),
        "fear": np.array([0.5, 0.2, 0.1, 0.1, 0.5]),
        "happy": np.array([0.1, 0.1, 0.7, 0.1, 0.1]),
        "surprise": np.array([0.8, 0.8, 0.8, 0.2, 0.8]),
    }
    thresholds = {"contempt": float("inf"), "fear": 0.3, "happy": 0.5, "surprise": 0.5}
    pair = {("fear", "surprise"): np.array([0.9, 0.9, 0.9, 0.9, 0.9])}  # the pair says fear everywhere
    thr = {("fear", "surprise"): 0.5}
    before = tool.decide(probs, thresholds)
    assert list(before) == ["surprise", "surprise", "surprise", "neutral", "surprise"]
    assert list(tool.second_stage(probs, thresholds, pair, thr, "above")) == ["fear", "surprise", "surprise", "neutral", "fear"]
    assert list(tool.second_stage(probs, thresholds, pair, thr, "top2")) == ["fear", "fear", "surprise", "neutral", "fear"]
    says_surprise = {("fear", "surprise"): np.full(5, 0.1)}
    assert list(tool.second_stage(probs, thresholds, says_surprise, thr, "above")) == list(before)
    # a uniform prior: fear (5 % of the calibration windows) overtakes surprise (20 %) where
    # both pass their thresholds, and no emotion passes a threshold it did not pass before
    priors = {"contempt": 0.01, "fear": 0.05, "happy": 0.3, "surprise": 0.2}
    assert list(tool.uniform_prior(probs, thresholds, priors)) == ["fear", "surprise", "surprise", "neutral", "fear"]
    assert list(tool.uniform_prior(probs, thresholds, {e: 1 / 3 for e in probs})) == list(before)
    assert tool.pair_subsets("areas", {})[("fear", "surprise")] == tool.area_landmarks(("brows", "eyes", "forehead"))
    assert len(tool.area_landmarks(("brows",))) == 28


@pytest.fixture(scope="module")
def setup(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_video_recipe(shared_data, tmp_path_factory, "second_stage", ("fear.mp4", "surprise.mp4"))  # two real clips of the fear/surprise pair


def test_second_stage_run_scores_before_and_after(setup: dict[str, Path]) -> None:
    out = setup["root"] / "ss.json"
    proc = subprocess.run([sys.executable, str(TOOL), "--config", str(setup["config"]), "--seeds", "0", "--video", str(setup["clips"]), "--regions", "areas",
                           "--rules", "above", "--output", str(out)], cwd=setup["root"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert set(run["variants"]) == {"before", "uniform prior", "areas/above"}
    for v in run["variants"].values():
        assert v["video"]["n_clips"] == 2 and 0.0 <= v["video"]["mean_window_recall"] <= 1.0
        assert 0.0 <= v["photos"]["rafdb"]["accuracy"] <= 1.0
    assert run["pairs"]["areas"]["fear|surprise"]["n_landmarks"] == 150
    agree = run["pair_agreement"]["areas"]
    assert set(agree) == {"clips/fear.mp4", "clips/surprise.mp4"} and all(0.0 <= x["fear|surprise"] <= 1.0 for x in agree.values())
    assert "| before |" in out.with_suffix(".md").read_text()


def test_bad_input_is_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    for args in (["--video", str(tmp_path / "missing")], ["--config", str(tmp_path / "none.yaml")], ["--video", str(setup["clips"]), "--rules", "sometimes"]):
        proc = subprocess.run([sys.executable, str(TOOL), "--config", str(setup["config"]), *args], cwd=setup["root"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
