"""Models that read MediaPipe's blendshapes beside the landmarks, end to end on real data:
training (with speech motion, whose blendshape motion comes along), the bundle, the live path
(landmarker -> selector -> fused ONNX -> message) with complete attributions that can name a
blendshape, and the offline evaluation and explanation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from fer_testdata import link, session_cache
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES
from realtime_fer.models.bundle import load_bundle
from realtime_fer.publish import Prediction, message_from_dict
from test_train_cli import fer, train_small_video_recipe


@pytest.fixture(scope="module")
def bundle(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_small_video_recipe(shared_data, tmp_path_factory, "blend_models", "  pooling: [mean, std]\n  blendshapes: true\n")[1]


def test_bundle_records_and_checks_blendshapes(bundle: Path) -> None:
    b = load_bundle(bundle)
    assert b.blendshapes == list(BLENDSHAPE_NAMES)
    for entry in b.emotions.values():
        model = onnx.load(str(bundle / entry.file))
        assert [i.name for i in model.graph.input] == ["window", "blendshapes"]
        assert b.network(entry.name).n_blendshapes == len(BLENDSHAPE_NAMES)


def test_live_path_scores_and_explains_blendshapes(bundle: Path, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    cfg = tmp_path / "run.yaml"
    cfg.write_text("explain: {which: above_threshold, top_k: 60}\n")  # blendshapes are off in the config: the bundle turns them on
    proc = fer("analyze", shared_data / "video" / "mead" / "happy.mp4", "--output", out, "--model", bundle, "--config", cfg, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    preds = [m for m in (message_from_dict(json.loads(line)) for line in out.read_text().splitlines()) if isinstance(m, Prediction)]
    assert preds and all(p.blendshapes is not None and len(p.blendshapes) == 52 for p in preds)
    explained = [(p, a) for p in preds for a in p.attributions.values()]
    assert explained
    named = 0
    for p, a in explained:
        assert abs(a["sum"] - (a["output"] - a["baseline_output"])) <= 0.01 * max(1.0, abs(a["output"] - a["baseline_output"]))
        named += sum("blendshape" in t for t in a["top"])
        for t in a["top"]:
            assert ("region" in t) != ("blendshape" in t)
            if "blendshape" in t:
                assert t["blendshape"] in BLENDSHAPE_NAMES
    assert named > 0  # with 60 entries some blendshapes rank among the top


def test_evaluate_and_explain_read_blendshapes(bundle: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("blend_eval")
    data = root / "clips"
    for name in ("happy.mp4", "surprise.mp4"):
        link(shared_data / "video" / "mead" / name, data / name)
    cache = session_cache(tmp_path_factory)
    proc = fer("evaluate", "--data", data, "--model", bundle, "--output", root / "m.json", "--cache", cache, "--workers", "0", "--no-progress", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((root / "m.json").read_text())
    assert m["video"]["n_clips"] == 2 and sum(c["windows"] for c in m["video"]["clips"].values()) > 50
    proc = fer("explain", "--data", data, "--model", bundle, "--output", root / "rel.json", "--cache", cache, "--workers", "0", "--no-progress", "--baseline", "neutral", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rel = json.loads((root / "rel.json").read_text())
    happy = rel["emotions"]["happy"]
    assert happy["completeness"]["max_relative_delta"] < 0.01
    np.testing.assert_allclose(sum(happy["relevance"]), 1.0, atol=1e-6)
