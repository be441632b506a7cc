"""The video protocol of ``realtime-fer evaluate`` on real shared clips, through the real path
(MediaPipe, the shipped ONNX model): per-clip votes and shares, window recall, clip accuracy and
the confusion matrix (JSON, table, PNG); clips without a face, corrupt clips and unknown labels
are listed and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_testdata import link, session_cache
from realtime_fer.labels import EMOTIONS
from test_train_cli import fer


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    root = tmp_path_factory.mktemp("video_protocol")
    data = root / "clips"
    mead = shared_data / "video" / "mead"
    for name in ("happy.mp4", "neutral.mp4", "surprise.mp4"):
        link(mead / name, data / name)
    link(shared_data / "video" / "pyfeat" / "no_face.mp4", data / "sad_noface.mp4")  # a clip with nobody in it
    (data / "fear_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    link(mead / "fear.mp4", data / "bored.mp4")  # not an emotion label
    out = root / "m.json"
    proc = fer("evaluate", "--data", data, "--output", out, "--cache", session_cache(tmp_path_factory), "--workers", "0", "--no-progress", cwd=root, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return json.loads(out.read_text()), proc.stdout, root


def test_schema_and_figures(run: tuple[dict, str, Path]) -> None:
    metrics, _, _ = run
    video = metrics["video"]
    for key in ("clips", "window_recall", "mean_window_recall", "clip_accuracy", "clips_right", "n_clips", "no_windows", "confusion", "smoothing"):
        assert key in video
    assert {"emotions", "overall", "model", "data", "videos"} <= set(metrics)  # today's schema stays
    clips = {Path(p).name: c for p, c in video["clips"].items()}
    assert set(clips) == {"happy.mp4", "neutral.mp4", "surprise.mp4", "sad_noface.mp4"}
    for name, c in clips.items():
        if c["windows"]:
            assert abs(sum(c["share"].values()) - 1) < 1e-9 and c["vote"] == max(c["share"], key=c["share"].get)
            assert c["correct"] == (c["vote"] == c["label"])
    assert clips["happy.mp4"]["vote"] == "happy"  # the one clip every model so far gets right
    assert clips["sad_noface.mp4"]["windows"] == 0 and clips["sad_noface.mp4"]["vote"] is None
    assert [Path(p).name for p in video["no_windows"]] == ["sad_noface.mp4"]
    assert video["clips_right"] == sum(c["correct"] for c in clips.values())
    assert video["clip_accuracy"] == pytest.approx(video["clips_right"] / 4)
    cm = video["confusion"]
    assert cm["true"] == ["happy", "neutral", "sad", "surprise"] and cm["predicted"] == list(EMOTIONS)
    windows = np.array(cm["windows"])
    for i, label in enumerate(cm["true"]):
        n = sum(c["windows"] for c in clips.values() if c["label"] == label)
        assert windows[i].sum() == n
        if n:
            assert video["window_recall"][label] == pytest.approx(windows[i, cm["predicted"].index(label)] / n)
    assert video["mean_window_recall"] == pytest.approx(np.mean(list(video["window_recall"].values())))
    assert np.array(cm["clips"]).sum() == 3


def test_bad_clips_are_listed(run: tuple[dict, str, Path]) -> None:
    metrics, _, _ = run
    failed = {Path(f["path"]).name: f["reason"] for f in metrics["data"]["failed"]}
    assert "fear_corrupt.mp4" in failed, failed
    assert "cannot open video" in failed["fear_corrupt.mp4"] or "no frames" in failed["fear_corrupt.mp4"]
    skipped = {Path(f["path"]).name: f["reason"] for f in metrics["data"]["skipped"]}
    assert "known label" in skipped["bored.mp4"]


def test_table_and_png(run: tuple[dict, str, Path]) -> None:
    metrics, stdout, root = run
    assert "clips: majority of the published tops" in stdout and "window confusion" in stdout
    assert "clips right" in stdout and "mean window recall" in stdout
    png = Path(metrics["video"]["confusion_png"])
    assert png == root / "m.confusion.png"
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    assert (img.std(axis=2) > 20).any()  # coloured cells


def test_leave_one_actor_out(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two actors of the shared MEAD clips (named in a groups file): each fold trains a recipe
    with speech motion and spread pooling on stills plus the other actor's clips, and scores
    its own actor's clips; every clip is scored once."""
    from fer_testdata import RAF_LABELS, ck_subset, imagefolder
    from test_train_cli import assert_clean_error, write_video_recipe_config

    root = tmp_path_factory.mktemp("loao")
    data = root / "clips"
    mead = shared_data / "video" / "mead"
    for name in ("happy.mp4", "neutral.mp4", "fear.mp4", "surprise.mp4"):
        link(mead / name, data / name)
    groups = root / "actors.yaml"
    groups.write_text("happy.mp4: man\nneutral.mp4: man\nfear.mp4: woman\nsurprise.mp4: woman\n")
    srcs = {"ck": ck_subset(shared_data, tmp_path_factory), "raf": imagefolder(shared_data / "rafdb" / "train", root / "rafdb", RAF_LABELS, 20)}
    cfg = write_video_recipe_config(root / "train.yaml", srcs, session_cache(tmp_path_factory), shared_data / "video" / "talking", "  pooling: [mean, std]\n")
    out = root / "loao.json"
    proc = fer("evaluate", "--data", data, "--output", out, "--leave-one-actor-out", cfg, "--groups", groups, "--cache", session_cache(tmp_path_factory), "--workers", "0", "--no-progress", cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = json.loads(out.read_text())
    assert m["actors"] == ["man", "woman"]
    assert sorted(Path(p).name for p in m["folds"]["man"]["clips"]) == ["happy.mp4", "neutral.mp4"]
    assert sorted(Path(p).name for p in m["video"]["clips"]) == ["fear.mp4", "happy.mp4", "neutral.mp4", "surprise.mp4"]
    assert np.array(m["video"]["confusion"]["clips"]).sum() == 4
    assert m["video"]["clips_right"] == sum(c["correct"] for c in m["video"]["clips"].values())
    assert "clips right" in proc.stdout and Path(m["video"]["confusion_png"]).is_file()
    groups.write_text("happy.mp4: man\nneutral.mp4: man\n")
    bad = fer("evaluate", "--data", data, "--output", root / "bad.json", "--leave-one-actor-out", cfg, "--groups", groups, "--cache", session_cache(tmp_path_factory), "--workers", "0", "--no-progress", cwd=root)
    assert_clean_error(bad, "no group for", "fear.mp4")
