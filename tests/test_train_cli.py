"""End to end on real data through the command line: ``realtime-fer train`` on a small CK+ and
RAF-DB subset writes a bundle that loads and scores; ``realtime-fer evaluate`` writes the
stable metrics schema (stills, a faceless still, a video's sliding windows, an unreadable
video); ``tools/reproduce_paper.py`` runs the subject-independent protocol; bad input gives
one ``error:`` line, exit code 2 and no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_testdata import RAF_LABELS, ck_subset, imagefolder, link, session_cache, spread
from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.windows import iter_window_chunks
from realtime_fer.features.windows import WindowOptions
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.bundle import MANIFEST, SCHEMA_VERSION, load_bundle
from realtime_fer.models.scorer import BundleScorer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VIDEO_FRAMES = 40
WINDOW_LENGTH, HOP = 4, 2
MOUTH = [0, 13, 14, 17, 37, 39, 40, 61, 78, 81, 82, 87, 91, 95, 146, 178, 181, 185, 267, 269, 270, 291, 308, 311, 312, 317, 321, 324, 375, 402, 405, 409, 415]


def fer(*args: str | Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m realtime_fer ARGS`` the way a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "realtime_fer", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train_cli")


@pytest.fixture(scope="module")
def sources(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, work: Path) -> dict[str, Path]:
    """CK+48 (30 per label, S### names kept) and RAF-DB train (20 per label, with neutral)."""
    return {
        "ck": ck_subset(shared_data, tmp_path_factory),
        "raf": imagefolder(shared_data / "rafdb" / "train", work / "rafdb", RAF_LABELS, 20),
    }


def write_config(path: Path, sources: dict[str, Path], cache: Path, extra: str = "") -> Path:
    path.write_text(
        f"""
data:
  sources:
    - {{path: "{sources['ck']}", name: ckplus48, licence: "CK+: non-commercial research use only"}}
    - {{path: "{sources['raf']}", name: rafdb, licence: "RAF-DB: non-commercial research use only"}}
  cache_dir: "{cache}"
  validation_fraction: 0.25
  calibration_fraction: 0.25
  workers: 2
window: {{length: {WINDOW_LENGTH}, hop: {HOP}, still_jitter: 0.0015}}
model:
  family: randomized
  min_positives: 8
  landmark_subsets: {{happy: {MOUTH}}}
  randomized: {{hidden: [128], activation: tanh, input_scale: 0.5, ridge: 0.01, direct_link: false, seed: 0}}
output: "{path.parent / 'default_output'}"
{extra}"""
    )
    return path


def write_video_recipe_config(path: Path, sources: dict[str, Path], cache: Path, talking: Path, model: str) -> Path:
    """:func:`write_config` with speech motion from two real talking clips and the extra
    ``model`` keys (YAML lines, e.g. ``"  pooling: [mean, std]\\n"``)."""
    cfg = write_config(path, sources, cache)
    text = cfg.read_text().replace("  workers: 2\n", f"  workers: 2\n  motion: {{sources: ['{talking / 'nice_clip1.mp4'}', '{talking / 'happyenglish_clip1.mp4'}']}}\n")
    cfg.write_text(text.replace("model:\n", "model:\n" + model))
    return cfg


def train_small_video_recipe(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, name: str, model: str) -> tuple[Path, Path]:
    """Train, through the CLI, a video-recipe bundle on a small CK+ subset and 20 RAF-DB photos
    per label with the extra ``model`` keys; returns (config, bundle)."""
    root = tmp_path_factory.mktemp(name)
    srcs = {"ck": ck_subset(shared_data, tmp_path_factory), "raf": imagefolder(shared_data / "rafdb" / "train", root / "rafdb", RAF_LABELS, 20)}
    cfg = write_video_recipe_config(root / "train.yaml", srcs, session_cache(tmp_path_factory), shared_data / "video" / "talking", model)
    out = root / "bundle"
    proc = fer("train", "--config", cfg, "--output", out, "--no-progress", cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cfg, out


@pytest.fixture(scope="module")
def config(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, work: Path) -> Path:
    return write_config(work / "train.yaml", sources, session_cache(tmp_path_factory))


@pytest.fixture(scope="module")
def trained(config: Path, work: Path) -> dict:
    bundle, report = work / "out" / "bundle", work / "report.json"
    proc = fer("train", "--config", config, "--output", bundle, "--report", report, "--no-progress", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return {"bundle": bundle, "report": json.loads(report.read_text()), "stdout": proc.stdout}


def test_train_writes_a_bundle_that_loads_and_scores(trained: dict, sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    bundle = load_bundle(trained["bundle"])
    report = trained["report"]
    names = list(bundle.emotions)
    assert {"happy", "surprise", "anger", "sad", "disgust"} <= set(names) <= set(EMOTIONS)
    assert names == [e for e in EMOTIONS if e in names]
    assert set(names) | set(report["skipped"]) == set(EMOTIONS)
    assert bundle.window_length == WINDOW_LENGTH and bundle.hop == HOP
    assert bundle.emotions["happy"].landmarks == MOUTH
    assert bundle.emotions["surprise"].landmarks == list(range(NUM_MESH_LANDMARKS))

    m = bundle.manifest
    assert m["schema_version"] == SCHEMA_VERSION and m["training"]["family"] == "randomized"
    assert [s["licence"] for s in m["training"]["sources"]] == ["CK+: non-commercial research use only", "RAF-DB: non-commercial research use only"]
    assert m["training"]["sources"][0]["n_with_face"] >= 200
    assert set(m["files"]) == {f"{e}.onnx" for e in names} and all(len(h) == 64 for h in m["files"].values())
    assert m["normalisation"]["method"] and m["landmarker"]["model_sha256"]
    for e in names:
        entry = bundle.emotions[e]
        assert 0.0 < entry.threshold < 1.0
        val = entry.metrics["validation"]
        assert val["n_pos"] >= 1 and val["n_neg"] >= 1 and 0 <= val["accuracy"] <= 1
    assert report["emotions"]["happy"]["auc"] > 0.8 and report["emotions"]["surprise"]["auc"] > 0.8
    assert "happy" in trained["stdout"] and "overall accuracy" in trained["stdout"]

    # the bundle scores real windows through onnxruntime
    res = extract_dataset(sources["ck"], session_cache(tmp_path_factory), workers=0, progress=False)
    happy = [s for s in res.samples if s.ref.label == "happy"][:6]
    sad = [s for s in res.samples if s.ref.label == "sad"][:6]
    assert res.n_computed == 0  # all from the cache the training run filled
    wins, owner = next(iter_window_chunks(happy + sad, WindowOptions(length=WINDOW_LENGTH, hop=HOP), jitter=False))
    probs = BundleScorer(bundle, device="cpu").predict(wins)
    assert set(probs) == set(names)
    for p in probs.values():
        assert p.shape == (len(wins),) and ((p >= 0) & (p <= 1)).all()
    assert probs["happy"][owner < 6].mean() > probs["happy"][owner >= 6].mean()


@pytest.fixture(scope="module")
def eval_dir(shared_data: Path, work: Path, sources: dict[str, Path]) -> dict:
    """Stills of three labels (cached by the training run), a faceless still, a MEAD clip, an
    unreadable video and a text file."""
    root = work / "eval"
    n_stills = 0
    for label in ("happy", "sad", "surprise"):
        for p in spread(list((sources["ck"] / label).iterdir()), 4):
            link(p.resolve(), root / label / p.name)
            n_stills += 1
    link(shared_data / "video" / "mead" / "happy.mp4", root / "happy" / "mead_happy.mp4")
    noise = np.random.default_rng(0).integers(0, 256, size=(120, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "sad" / "no_face.png"), noise)
    (root / "anger").mkdir()
    (root / "anger" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    (root / "happy" / "notes.txt").write_text("not an image")
    return {"root": root, "n_stills": n_stills}


@pytest.fixture(scope="module")
def evaluated(trained: dict, eval_dir: dict, work: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = work / "metrics" / "m.json"
    out.parent.mkdir()
    proc = fer(
        "evaluate", "--data", eval_dir["root"], "--model", trained["bundle"], "--output", out,
        "--cache", session_cache(tmp_path_factory), "--max-video-frames", VIDEO_FRAMES, "--workers", 2, "--device", "cpu", "--no-progress",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"metrics": json.loads(out.read_text()), "stdout": proc.stdout}


def test_evaluate_writes_the_schema(evaluated: dict, trained: dict) -> None:
    m = evaluated["metrics"]
    assert {"emotions", "overall", "model"} <= set(m)
    bundle_emotions = list(load_bundle(trained["bundle"]).emotions)
    assert list(m["emotions"]) == bundle_emotions
    for name, e in m["emotions"].items():
        assert {"auc", "accuracy", "balanced_accuracy", "f1", "n_pos", "n_neg"} <= set(e), name
        for k in ("auc", "accuracy", "balanced_accuracy", "f1"):
            assert e[k] is None or (isinstance(e[k], float) and 0.0 <= e[k] <= 1.0), (name, k, e[k])
        assert isinstance(e["n_pos"], int) and isinstance(e["n_neg"], int)
        assert e["n_pos"] + e["n_neg"] == m["overall"]["n"]
    for name in ("happy", "sad", "surprise"):
        assert m["emotions"][name]["n_pos"] > 0 and isinstance(m["emotions"][name]["auc"], float)
    ov = m["overall"]
    assert {"accuracy", "detection_rate", "n"} <= set(ov)
    assert isinstance(ov["accuracy"], float) and isinstance(ov["detection_rate"], float) and isinstance(ov["n"], int)
    assert isinstance(m["model"], dict) and m["model"]["path"] == str(trained["bundle"])
    assert m["model"]["provider"] == "CPUExecutionProvider" and m["model"]["schema_version"] == SCHEMA_VERSION
    assert "detection rate" in evaluated["stdout"]


def test_evaluate_counts_faceless_images_and_slides_over_videos(evaluated: dict, eval_dir: dict) -> None:
    m = evaluated["metrics"]
    ov = m["overall"]
    n_stills = eval_dir["n_stills"]
    frames = n_stills + 1 + VIDEO_FRAMES  # + the faceless still
    assert ov["n_frames"] == frames and ov["n_frames_detected"] == frames - 1
    assert ov["detection_rate"] == pytest.approx((frames - 1) / frames)
    n_video_windows = (VIDEO_FRAMES - WINDOW_LENGTH) // HOP + 1
    assert ov["n"] == n_stills + n_video_windows  # the faceless still is left out
    (video,) = m["videos"].values()
    assert video["label"] == "happy" and video["windows"] == n_video_windows and video["detection_rate"] == 1.0
    assert set(video["mean_probability"]) == set(m["emotions"])
    failed = {Path(f["path"]).name: f["reason"] for f in m["data"]["failed"]}
    assert list(failed) == ["broken.mp4"] and ov["n_failed"] == 1
    assert ov["labels"] == {"happy": 5, "sad": 5, "surprise": 4}


# -- tools/reproduce_paper.py ------------------------------------------------------------------------
# --seed 1: on this subset, the first inner calibration split of one fold holds no anger or
# contempt subject, which crashed fit_platt before the split was redrawn
def test_reproduce_paper_on_a_ckplus_subset(sources: dict[str, Path], config: Path, work: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = work / "paper" / "report.json"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tools" / "reproduce_paper.py"), "--data", str(sources["ck"]), "--output", str(out),
         "--folds", "3", "--seed", "1", "--cache", str(session_cache(tmp_path_factory)), "--config", str(config)],
        cwd=work, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert list(report["emotions"]) == ["anger", "contempt", "disgust", "fear", "happy", "sad", "surprise"]
    for name, variants in report["emotions"].items():
        full = variants["full"]
        assert {"accuracy", "balanced_accuracy", "auc", "n_landmarks"} <= set(full), name
        for k in ("accuracy", "balanced_accuracy", "auc"):
            assert isinstance(full[k], float) and 0.0 <= full[k] <= 1.0, (name, k)
        assert full["n_landmarks"] == NUM_MESH_LANDMARKS
        assert full["n_pos"] == 30 and full["n_pos"] + full["n_neg"] == 210
        assert name in proc.stdout
    assert report["emotions"]["happy"]["full"]["auc"] > 0.9
    p = report["protocol"]
    assert p["folds"] == 3 and p["seed"] == 1 and p["grouped_by"] == "subject" and p["n_images"] == 210
    assert p["n_subjects"] == len({f.name.split("_")[0] for f in sources["ck"].rglob("*.png")})


def test_reproduce_paper_bad_input_is_one_error_line(config: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tools" / "reproduce_paper.py"), "--data", str(tmp_path / "no_ck"), "--output", str(tmp_path / "r.json"),
         "--cache", str(tmp_path / "cache"), "--config", str(config)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert_clean_error(proc, "dataset folder not found", "no_ck")
    assert not (tmp_path / "r.json").exists()


# -- bad input ----------------------------------------------------------------------------------------
def test_train_bad_input_is_one_error_line(sources: dict[str, Path], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = session_cache(tmp_path_factory)
    missing = write_config(tmp_path / "missing.yaml", {**sources, "raf": tmp_path / "no_such_folder"}, cache)
    assert_clean_error(fer("train", "--config", missing, "--no-progress", cwd=tmp_path), "dataset folder not found", "no_such_folder")

    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  sources: [{path: x\n")
    assert_clean_error(fer("train", "--config", broken, cwd=tmp_path), "not valid YAML", "broken.yaml")

    unknown = write_config(tmp_path / "unknown.yaml", sources, cache, extra="model_typo: 3\n")
    assert_clean_error(fer("train", "--config", unknown, cwd=tmp_path), "unknown key(s) 'model_typo'")
    nested = write_config(tmp_path / "nested.yaml", sources, cache).read_text().replace("ridge: 0.01", "ridg: 0.01")
    (tmp_path / "nested.yaml").write_text(nested)
    assert_clean_error(fer("train", "--config", tmp_path / "nested.yaml", cwd=tmp_path), "model.randomized", "'ridg'")

    assert_clean_error(fer("train", "--config", tmp_path / "nope.yaml", cwd=tmp_path), "config file not found")

    odd = tmp_path / "odd"
    link(next((sources["raf"] / "happy").iterdir()).resolve(), odd / "happyish" / "a.jpg")
    bad_label = write_config(tmp_path / "label.yaml", {**sources, "raf": odd}, cache)
    assert_clean_error(fer("train", "--config", bad_label, "--no-progress", cwd=tmp_path), "'happyish'", "not a known emotion label")


def test_evaluate_bad_input_is_one_error_line(trained: dict, eval_dir: dict, tmp_path: Path) -> None:
    bundle, data = trained["bundle"], eval_dir["root"]
    out = tmp_path / "m.json"
    assert_clean_error(fer("evaluate", "--data", tmp_path / "missing", "--model", bundle, "--output", out, "--no-progress", cwd=tmp_path), "dataset folder not found")
    assert_clean_error(fer("evaluate", "--data", data, "--model", bundle, "--output", tmp_path / "no" / "dir" / "m.json", cwd=tmp_path), "output folder does not exist")
    assert_clean_error(fer("evaluate", "--data", data, "--model", tmp_path / "no_bundle", "--output", out, cwd=tmp_path), "model bundle not found")

    odd = tmp_path / "odd"
    link(next((data / "happy").glob("*.png")).resolve(), odd / "joyful-ish" / "a.png")
    assert_clean_error(fer("evaluate", "--data", odd, "--model", bundle, "--output", out, cwd=tmp_path), "'joyful-ish'", "not a known emotion label")

    corrupt = tmp_path / "corrupt_bundle"

    shutil.copytree(bundle, corrupt)
    (corrupt / MANIFEST).write_text('{"schema_version": 1, "emotions": ')
    assert_clean_error(fer("evaluate", "--data", data, "--model", corrupt, "--output", out, cwd=tmp_path), "corrupt manifest", str(corrupt))
    assert not out.exists()
