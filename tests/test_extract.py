"""Landmark extraction with real MediaPipe on real files from ../shared/data, the cache, and
the ``realtime-fer extract`` command."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.cli import COMMANDS
from realtime_fer.data.cache import cache_key, entry_path, load_entry
from realtime_fer.data.extract import ExtractionResult, _key_settings, _settings, default_options, extract_dataset
from realtime_fer.data.layouts import discover
from realtime_fer.errors import DataError

N_VIDEO_FRAMES = 12


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


@pytest.fixture(scope="module")
def tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder tree: 3 CK+48 stills, a posed 512x512 still, one MEAD clip, a garbage
    ``.mp4``, an unreadable ``.jpg`` and a text file."""
    root = tmp_path_factory.mktemp("tree")
    ck = shared_data / "ckplus48"
    for label in ("happy", "surprise"):
        for p in sorted((ck / label).glob("*.png"))[:1 if label == "happy" else 2]:
            _link(p, root / label / p.name)
    _link(shared_data / "images" / "pyfeat" / "0-f15-hao-ph.jpg", root / "happy" / "posed.jpg")
    _link(shared_data / "video" / "mead" / "sad.mp4", root / "sad" / "mead_sad.mp4")
    (root / "anger").mkdir()
    (root / "anger" / "x.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "anger" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "happy" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def first_run(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ExtractionResult, Path]:
    cache = tmp_path_factory.mktemp("cache")
    result = extract_dataset(tree, cache, workers=2, progress=False, max_video_frames=N_VIDEO_FRAMES)
    return result, cache


def _by_name(result: ExtractionResult) -> dict:
    return {s.ref.path.name: s for s in result.samples}


def test_stills_have_finite_landmarks(first_run: tuple[ExtractionResult, Path]) -> None:
    result, _ = first_run
    stills = [s for s in result.samples if s.ref.kind == "image"]
    assert len(stills) == 4
    for s in stills:
        assert s.landmarks.shape == (1, 478, 3) and s.landmarks.dtype == np.float32
        assert np.isfinite(s.landmarks).all(), s.ref.path
        assert s.detected.tolist() == [True] and s.detection_rate == 1.0 and s.fps is None
        w, h = s.frame_size
        # pixel units of the unpadded image: the face lies (mostly) inside it
        assert 0 <= np.median(s.landmarks[0, :, 0]) <= w and 0 <= np.median(s.landmarks[0, :, 1]) <= h
    assert _by_name(result)["posed.jpg"].frame_size == (512, 512)


def test_video_in_video_mode_limited_frames(first_run: tuple[ExtractionResult, Path]) -> None:
    result, _ = first_run
    video = _by_name(result)["mead_sad.mp4"]
    assert video.landmarks.shape == (N_VIDEO_FRAMES, 478, 3)
    assert video.fps == pytest.approx(25.0) and video.frame_size == (256, 256)
    assert video.detection_rate == 1.0


def test_failed_and_skipped_files_are_listed_not_fatal(first_run: tuple[ExtractionResult, Path]) -> None:
    result, _ = first_run
    failed = {Path(p).name: reason for p, reason in result.failed}
    assert set(failed) == {"x.mp4", "broken.jpg"}
    assert "cannot open video" in failed["x.mp4"] or "no frames" in failed["x.mp4"]
    assert "cannot decode image" in failed["broken.jpg"]
    assert [Path(p).name for p, _ in result.skipped] == ["notes.txt"]
    assert result.per_label == {
        "happy": {"n": 2, "detected": 2, "rate": 1.0, "frames": 2, "frames_detected": 2},
        "sad": {"n": 1, "detected": 1, "rate": 1.0, "frames": N_VIDEO_FRAMES, "frames_detected": N_VIDEO_FRAMES},
        "surprise": {"n": 2, "detected": 2, "rate": 1.0, "frames": 2, "frames_detected": 2},
    }
    report = json.loads(json.dumps(result.to_report()))
    assert report["n_samples"] == 5 and report["n_failed"] == 2 and report["n_skipped"] == 1
    assert result.n_computed == 7 and result.n_cached == 0


def test_rerun_is_served_from_the_cache(tree: Path, first_run: tuple[ExtractionResult, Path]) -> None:
    result, cache = first_run
    t0 = time.perf_counter()
    again = extract_dataset(tree, cache, workers=2, progress=False, max_video_frames=N_VIDEO_FRAMES)
    elapsed = time.perf_counter() - t0
    assert again.n_computed == 0 and again.n_cached == 7  # decode failures are remembered too
    assert all(s.from_cache for s in again.samples) and elapsed < 2.0
    assert again.failed == result.failed
    for a, b in zip(result.samples, again.samples):
        assert a.ref == b.ref and np.array_equal(a.landmarks, b.landmarks, equal_nan=True)
    # another frame limit is another cache key for the videos only (the clip and x.mp4)
    other = extract_dataset(tree, cache, workers=0, progress=False, max_video_frames=N_VIDEO_FRAMES - 2)
    assert other.n_computed == 2 and other.n_cached == 5 and _by_name(other)["mead_sad.mp4"].n_frames == N_VIDEO_FRAMES - 2


def test_cache_key_depends_on_the_options() -> None:
    base = default_options()
    padded = _key_settings(_settings(base, None), "image")
    unpadded = _key_settings(_settings(type(base)(pad_fraction=0.0), None), "image")
    k = [cache_key("c" * 64, "image", "m" * 64, s) for s in (padded, unpadded)]
    assert k[0] != k[1]
    assert cache_key("c" * 64, "image", "m" * 64, padded) == k[0]
    assert cache_key("c" * 64, "image", "n" * 64, padded) != k[0]  # another model
    # the video frame limit does not invalidate stills
    assert _key_settings(_settings(base, 5), "image") == padded


def test_ckplus_sequences_and_corrupt_cache_entry(shared_data: Path, tmp_path: Path) -> None:
    imgs = sorted((shared_data / "ckplus48" / "surprise").glob("*.png"))[:4]
    for i, p in enumerate(imgs):
        _link(p, tmp_path / "ck" / "cohn-kanade-images" / "S022" / "003" / f"S022_003_{i + 1:08d}.png")
    txt = tmp_path / "ck" / "Emotion" / "S022" / "003" / "S022_003_00000004_emotion.txt"
    txt.parent.mkdir(parents=True)
    txt.write_text("   7.0000000e+00\n")
    cache = tmp_path / "cache"

    result = extract_dataset(tmp_path / "ck", cache, workers=0, progress=False)
    seq = next(s for s in result.samples if s.ref.kind == "sequence")
    first = next(s for s in result.samples if s.ref.kind == "image")
    assert seq.ref.label == "surprise" and seq.ref.group == "S022" and seq.landmarks.shape == (3, 478, 3)
    assert seq.detection_rate == 1.0 and first.ref.label == "neutral" and first.landmarks.shape == (1, 478, 3)

    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 2
    entries[0].write_bytes(b"this is not a zip file")
    assert load_entry(entries[0]) is None
    again = extract_dataset(discover(tmp_path / "ck"), cache, workers=0, progress=False)
    assert again.n_computed == 1 and again.n_cached == 1 and not again.failed
    assert load_entry(entries[0]) is not None
    assert not list(cache.rglob("*.tmp"))


def test_extract_api_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder not found"):
        extract_dataset(tmp_path / "missing", tmp_path / "cache", progress=False)
    assert entry_path(tmp_path, "ab" + "0" * 62).parent.name == "ab"


# -- the command line ---------------------------------------------------------------------
def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m realtime_fer ARGS``. While other subcommands of the CLI are still
    unwritten (the parser imports every one), stand-ins are registered for those only."""
    missing = [m for m, _ in COMMANDS.values() if importlib.util.find_spec(f"realtime_fer.commands.{m}") is None]
    if not missing:
        cmd = [sys.executable, "-m", "realtime_fer", *args]
    else:
        boot = (
            "import sys, types\n"
            f"for m in {missing!r}:\n"
            "    mod = types.ModuleType('realtime_fer.commands.' + m)\n"
            "    mod.add_arguments = lambda p: None\n"
            "    mod.run = lambda a: 0\n"
            "    sys.modules[mod.__name__] = mod\n"
            "from realtime_fer.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        cmd = [sys.executable, "-c", boot, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_cli_missing_folder_is_one_error_line(tmp_path: Path) -> None:
    proc = _cli("extract", str(tmp_path / "nowhere"), "--output", str(tmp_path / "c"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset folder not found")
    assert "Traceback" not in proc.stderr


def test_cli_unknown_label_is_one_error_line(tree: Path, tmp_path: Path) -> None:
    bad = tmp_path / "data"
    _link(next(tree.glob("happy/*.png")), bad / "hapy" / "a.png")
    proc = _cli("extract", str(bad), "--output", str(tmp_path / "c"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: folder 'hapy'") and "known labels" in proc.stderr


def test_cli_extracts_and_reports(tree: Path, first_run: tuple[ExtractionResult, Path], tmp_path: Path) -> None:
    _, cache = first_run
    report = tmp_path / "out" / "report.json"
    proc = _cli("extract", str(tree), "--output", str(cache), "--max-video-frames", str(N_VIDEO_FRAMES), "--report", str(report), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "surprise" in proc.stdout and "x.mp4" in proc.stdout and "failed: 2" in proc.stdout and "skipped: 1" in proc.stdout
    data = json.loads(report.read_text())
    assert data["n_samples"] == 5 and data["n_cached"] == 7 and data["per_label"]["happy"]["n"] == 2


def test_cli_nothing_extracted_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "d" / "happy").mkdir(parents=True)
    (tmp_path / "d" / "happy" / "x.mp4").write_bytes(b"garbage" * 100)
    proc = _cli("extract", str(tmp_path / "d"), "--output", str(tmp_path / "c"), "--workers", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "x.mp4" in proc.stdout and "error: nothing could be extracted" in proc.stderr
