"""Pruning, dataset-level explanation and the pruned CK+ reproduction, end to end on real data
through the command line: ``realtime-fer prune`` on a CK+ subset writes the curves (IG and
random entries) and a pruned bundle that loads and scores; ``realtime-fer explain`` writes
relevance.json and heatmaps; ``tools/reproduce_paper.py`` writes "full" and "pruned" entries;
bad input gives one ``error:`` line, exit code 2 and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_testdata import ck_subset, link, session_cache, spread
from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.explain.regions import face_regions
from realtime_fer.features.windows import WindowOptions
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.bundle import load_bundle
from realtime_fer.models.scorer import BundleScorer
from realtime_fer.training.config import load_train_config
from realtime_fer.training.pruning import choose_count, random_subset
from test_train_cli import assert_clean_error, fer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = [468, 128, 64]
WINDOW_LENGTH = 4


def write_prune_config(path: Path, data: Path, cache: Path, out: Path, prune_extra: str = "", schedule: list[int] = SCHEDULE) -> Path:
    path.write_text(
        f"""
data:
  sources:
    - {{path: "{data}", name: ckplus48, licence: "CK+: non-commercial research use only"}}
  cache_dir: "{cache}"
  validation_fraction: 0.3
  calibration_fraction: 0.2
  workers: 2
window: {{length: {WINDOW_LENGTH}, hop: 2, still_jitter: 0.0015}}
model:
  min_positives: 8
  randomized: {{hidden: [128], activation: tanh, input_scale: 0.5, ridge: 0.01, direct_link: true, seed: 0}}
prune:
  schedule: {schedule}
  baseline: others
  ig_steps: 8
  max_samples: 40
  random_seeds: 2
  time_runs: 20
  output: "{out / 'curves'}"
  bundle: "{out / 'bundle'}"
{prune_extra}"""
    )
    return path


@pytest.fixture(scope="module")
def ck(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ck_subset(shared_data, tmp_path_factory)


@pytest.fixture(scope="module")
def pruned(ck: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("prune")
    config = write_prune_config(work / "prune.yaml", ck, session_cache(tmp_path_factory), work)
    proc = fer("prune", "--config", config, "--no-progress", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"work": work, "stdout": proc.stdout, "curves": json.loads((work / "curves" / "curves.json").read_text()),
            "report": json.loads((work / "curves" / "report.json").read_text()), "bundle": work / "bundle"}


def test_prune_writes_curves_with_ig_and_random_entries(pruned: dict) -> None:
    curves = pruned["curves"]
    assert curves["schedule"] == SCHEDULE and curves["criterion"] == "auc"
    emotions = curves["emotions"]
    assert {"happy", "surprise", "disgust", "anger", "sad"} <= set(emotions)
    for e, c in emotions.items():
        points = c["points"]
        assert [p["n_landmarks"] for p in points] == SCHEDULE, e
        assert points[0]["random"] is None  # the full set is the same for every variant
        for p in points[1:]:
            assert len(p["random"]["values"]) == 2 and p["random"]["std"] is not None, (e, p)
            assert isinstance(p["ig"][c["criterion"]], float)
            assert p["margin"] == pytest.approx(p["ig"][c["criterion"]] - p["random"]["mean"])
        assert c["chosen"] in SCHEDULE
        values = [p["ig"][c["criterion"]] for p in points]
        assert c["chosen_value"] >= max(values) - 0.005  # within the tolerance of the best
        assert c["chosen"] == min(n for n, v in zip(SCHEDULE, values) if v >= max(values) - 0.005)
        for name in (f"curve_{e}.png", f"relevance_{e}.png"):
            img = cv2.imread(str(pruned["work"] / "curves" / name))
            assert img is not None and img.shape[0] > 300 and img.std() > 5, name
    assert "pruned bundle" in pruned["stdout"] and "wall time" in pruned["stdout"]


def test_pruned_bundle_has_the_chosen_subsets_and_scores(pruned: dict, ck: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    bundle = load_bundle(pruned["bundle"])
    report, curves = pruned["report"], pruned["curves"]["emotions"]
    assert set(bundle.emotions) == set(curves) == set(report["emotions"])
    for e, entry in bundle.emotions.items():
        assert len(entry.landmarks) == curves[e]["chosen"] == report["emotions"][e]["n_landmarks"]["pruned"]
        assert entry.landmarks == sorted(entry.landmarks) == report["emotions"][e]["landmarks"]
        net = bundle.network(e)
        assert net.n_landmarks == len(entry.landmarks)
        cost = report["emotions"][e]["cost"]
        assert cost["full"]["input_dims"] == 3 * NUM_MESH_LANDMARKS and cost["pruned"]["input_dims"] == 3 * len(entry.landmarks)
        assert cost["pruned"]["macs"] <= cost["full"]["macs"] and cost["full"]["onnx_ms_per_window"] > 0
        for k in ("auc", "accuracy", "balanced_accuracy"):
            assert 0 <= report["emotions"][e]["pruned"][k] <= 1
    assert any(len(e.landmarks) < NUM_MESH_LANDMARKS for e in bundle.emotions.values())
    train_config = load_train_config(pruned["work"] / "curves" / "train_pruned.yaml")  # retrains the same bundle
    assert train_config.model.landmark_subsets == {e: entry.landmarks for e, entry in bundle.emotions.items()}
    assert train_config.output == str(pruned["bundle"])
    assert bundle.manifest["training"]["pruning"]["schedule"] == SCHEDULE
    assert report["timing"]["total_s"] > 0 and report["completeness_max_relative_delta"] < 1e-2

    res = extract_dataset(ck, session_cache(tmp_path_factory), workers=0, progress=False)
    happy = [s for s in res.samples if s.ref.label == "happy"][:5]
    sad = [s for s in res.samples if s.ref.label == "sad"][:5]
    wins, owner = next(iter_window_chunks(happy + sad, WindowOptions(length=WINDOW_LENGTH, hop=2), jitter=False))
    probs = BundleScorer(bundle, device="cpu").predict(wins)
    assert probs["happy"][owner < 5].mean() > probs["happy"][owner >= 5].mean()
    happy_net = bundle.network("happy")
    np.testing.assert_allclose(happy_net.probability(wins[:, :, bundle.emotions["happy"].landmarks]), probs["happy"], atol=1e-5)


def test_choose_count_and_random_subsets() -> None:
    assert choose_count([468, 128, 64, 32], [0.90, 0.903, 0.899, 0.85], 0.005) == 64
    assert choose_count([468, 128, 64], [0.90, None, 0.80], 0.005) == 468
    assert choose_count([468, 128], [None, None], 0.005) == 468
    # a cost budget: the best at or under it decides (0.903 at 128 -> 64 within 0.005)
    assert choose_count([468, 128, 64, 32], [0.95, 0.903, 0.899, 0.85], 0.005) == 468
    assert choose_count([468, 128, 64, 32], [0.95, 0.903, 0.899, 0.85], 0.005, max_count=160) == 64
    assert choose_count([468, 128, 64, 32], [0.95, None, None, None], 0.005, max_count=160) == 128
    a, b = random_subset(range(468), 64, 0), random_subset(range(468), 64, 1)
    assert a == random_subset(range(468), 64, 0) and a != b and len(set(a)) == 64 == len(a)


def test_explain_writes_relevance_and_heatmaps(pruned: dict, ck: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path / "data"
    for label in ("happy", "surprise", "sad"):
        for p in spread(list((ck / label).iterdir()), 6):
            link(p.resolve(), data / label / p.name)
    out, maps = tmp_path / "relevance.json", tmp_path / "maps"
    proc = fer("explain", "--data", data, "--output", out, "--model", pruned["bundle"], "--baseline", "neutral", "--steps", 8,
               "--heatmaps", maps, "--cache", session_cache(tmp_path_factory), "--workers", 2, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    bundle = load_bundle(pruned["bundle"])
    assert set(report["emotions"]) == {"happy", "surprise", "sad"}
    assert set(report["skipped"]) == set(bundle.emotions) - {"happy", "surprise", "sad"}
    names = face_regions().names
    for e, r in report["emotions"].items():
        assert r["landmarks"] == bundle.emotions[e].landmarks
        assert sum(r["relevance"]) == pytest.approx(1.0, abs=1e-6) and min(r["relevance"]) >= 0
        assert r["regions"] == [names[i] for i in r["landmarks"]]
        assert r["n_samples"] == 6 and r["baseline"]["kind"] == "neutral"
        assert "shipped" in r["baseline"]["faces"][0]["description"]  # CK+ has no neutral face
        top = r["top_landmarks"]
        assert len(top) == 10 and top[0]["relevance"] == pytest.approx(max(r["relevance"])) and top[0]["region"] in names
        # top: regions of the model's landmarks and blendshapes, by their share of the relevance
        assert len(r["top"]) == 10 and all(set(t) in ({"region", "relevance", "signed"}, {"blendshape", "relevance", "signed"}) for t in r["top"])
        assert all(t["region"] in set(r["regions"]) for t in r["top"] if "region" in t)
        shares = [t["relevance"] for t in r["top"]]
        assert shares == sorted(shares, reverse=True)
        assert sum(r["region_relevance"].values()) + sum(r["blendshape_relevance"].values()) == pytest.approx(1.0, abs=1e-4)
        assert r["completeness"]["max_relative_delta"] < 1e-2
        img = cv2.imread(r["heatmap"])
        assert img is not None and img.shape[0] >= 800 and Path(r["heatmap"]).parent == maps
    assert report["integrated_gradients"]["n_steps"] == 8 and report["data"]["n_with_face"] == 18
    assert "happy" in proc.stdout and str(out) in proc.stdout


def test_reproduce_paper_writes_full_and_pruned(ck: Path, pruned: dict, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path / "report.json"
    prune_config = pruned["work"] / "prune.yaml"
    config = tmp_path / "train.yaml"  # the same data/window/model sections, without 'prune'
    config.write_text(prune_config.read_text().split("prune:")[0])
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tools" / "reproduce_paper.py"), "--data", str(ck), "--output", str(out), "--folds", "3", "--seed", "1",
         "--cache", str(session_cache(tmp_path_factory)), "--config", str(config), "--prune-config", str(prune_config), "--pruned-landmarks", "64", "--prune-schedule", "128"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    for name, variants in report["emotions"].items():
        assert set(variants) == {"full", "pruned"}, name
        assert variants["full"]["n_landmarks"] == NUM_MESH_LANDMARKS and variants["pruned"]["n_landmarks"] == 64
        for k in ("accuracy", "balanced_accuracy", "auc"):
            assert isinstance(variants["pruned"][k], float) and 0 <= variants["pruned"][k] <= 1, (name, k)
        assert variants["pruned"]["n_pos"] == variants["full"]["n_pos"]
    assert report["emotions"]["happy"]["pruned"]["auc"] > 0.85
    p = report["protocol"]["pruned"]
    assert p["schedule"] == [468, 128, 64] and "never the test fold" in p["chosen_on"]
    assert proc.stdout.count("pruned") >= len(report["emotions"])


# -- bad input ----------------------------------------------------------------------------------------
def test_bad_input_is_one_error_line(ck: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = session_cache(tmp_path_factory)
    missing = write_prune_config(tmp_path / "missing.yaml", tmp_path / "no_such_data", cache, tmp_path)
    assert_clean_error(fer("prune", "--config", missing, "--no-progress", cwd=tmp_path), "dataset folder not found", "no_such_data")

    rising = write_prune_config(tmp_path / "rising.yaml", ck, cache, tmp_path, schedule=[64, 128])
    assert_clean_error(fer("prune", "--config", rising, cwd=tmp_path), "prune", "strictly decreasing")
    typo = write_prune_config(tmp_path / "typo.yaml", ck, cache, tmp_path, prune_extra="  tolerence: 0.01\n")
    assert_clean_error(fer("prune", "--config", typo, cwd=tmp_path), "prune", "'tolerence'")
    kind = write_prune_config(tmp_path / "kind.yaml", ck, cache, tmp_path, prune_extra="  criterion: f2\n")
    assert_clean_error(fer("prune", "--config", kind, cwd=tmp_path), "prune.criterion", "'f2'")
    assert_clean_error(fer("prune", "--config", tmp_path / "nope.yaml", cwd=tmp_path), "config file not found")

    out = tmp_path / "r.json"
    assert_clean_error(fer("explain", "--data", ck, "--output", out, "--baseline", "median", cwd=tmp_path), "unknown baseline 'median'")
    assert_clean_error(fer("explain", "--data", tmp_path / "no_data", "--output", out, "--cache", cache, cwd=tmp_path), "dataset folder not found")
    assert_clean_error(fer("explain", "--data", ck, "--output", out, "--model", tmp_path / "no_bundle", cwd=tmp_path), "model bundle not found")
    assert_clean_error(fer("explain", "--data", ck, "--output", tmp_path / "no" / "dir" / "r.json", cwd=tmp_path), "output folder does not exist")
    assert not out.exists()
