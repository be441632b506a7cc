"""Still photos rendered into talking video (realtime_fer.data.render_talking, tools/render_talking.py),
on real RAF-DB photos and real talking clips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fer_testdata import RAF_LABELS, imagefolder, session_cache
from realtime_fer.data.extract import default_options, extract_dataset
from realtime_fer.data.layouts import discover
from realtime_fer.data.motion import MotionBank
from realtime_fer.data.render_talking import TalkingWarp, clip_rng, motion_length, resample, sample_motion
from realtime_fer.landmarks.detector import FaceLandmarkDetector
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, normalize_landmarks
from realtime_fer.training.splits import group_split

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLIPS = ("furious_talk2_clip1.mp4", "happyenglish_clip1.mp4", "nice_clip1.mp4")
#: RAF-DB training photos of several expressions, closed and open mouths.
PHOTOS = ("neutral/train_12185_aligned.jpg", "happy/train_01061_aligned.jpg", "anger/train_00023_aligned.jpg", "sad/train_05661_aligned.jpg")


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_talking_tool", PROJECT_ROOT / "tools" / "render_talking.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bank(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> MotionBank:
    return MotionBank.from_videos([shared_data / "video" / "talking" / c for c in CLIPS], session_cache(tmp_path_factory), workers=0)


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, landmarks) of :data:`PHOTOS`, landmarks as the extractor computes them (padded
    IMAGE mode, pixels of the unpadded image)."""
    import cv2

    out = []
    with FaceLandmarkDetector(default_options(), running_mode="image") as det:
        for name in PHOTOS:
            image = cv2.imread(str(shared_data / "rafdb" / "train" / name))
            faces = det.detect(image)
            assert faces, f"no face in {name}"
            out.append((image, faces[0].points))
    return out


def test_motion_is_resampled_to_25_fps(bank: MotionBank) -> None:
    assert motion_length(25) == 30  # 25 frames at 25 fps span 0.96 s = 28.8 frames at 30 fps
    seg = np.arange(30, dtype=np.float32)[:, None]
    out = resample(seg, 25)
    np.testing.assert_allclose(out[:, 0], np.arange(25) * 1.2, atol=1e-5)
    m, b = sample_motion(bank, 25, np.random.default_rng(0))
    assert m.shape == (25, 468, 3) and m.dtype == np.float32 and b is None


def test_displacements_are_the_motion_in_the_photo_frame(photos: list[tuple[np.ndarray, np.ndarray]], bank: MotionBank) -> None:
    """Moving the photo's 3-D landmarks by ``motion @ R.T / s`` and normalising again gives the
    photo's normalised face plus the motion (the inverse of the photo's own similarity)."""
    image, lm = photos[1]
    warp = TalkingWarp(image, lm)
    motion, _ = sample_motion(bank, 10, np.random.default_rng(3))
    d3 = (motion.astype(np.float64) @ warp.rotation.T) / warp.scale
    moved = normalize_landmarks(lm[None, :468].astype(np.float64) + d3)
    still = normalize_landmarks(lm[:468])
    err = np.abs(moved - still[None] - motion).max()
    assert err < 0.1 * np.abs(motion).max() + 1e-4
    np.testing.assert_allclose(warp.pixel_displacements(motion), d3[..., :2], atol=1e-4)


def test_rendering_is_deterministic_for_a_seed(photos: list[tuple[np.ndarray, np.ndarray]], bank: MotionBank) -> None:
    image, lm = photos[0]
    a = TalkingWarp(image, lm).render(sample_motion(bank, 12, clip_rng(7, "rafdb:train_12185_aligned"), scale=(0.5, 1.5), mirror=True)[0])
    b = TalkingWarp(image, lm).render(sample_motion(bank, 12, clip_rng(7, "rafdb:train_12185_aligned"), scale=(0.5, 1.5), mirror=True)[0])
    c = TalkingWarp(image, lm).render(sample_motion(bank, 12, clip_rng(8, "rafdb:train_12185_aligned"), scale=(0.5, 1.5), mirror=True)[0])
    assert a.shape == (12,) + image.shape and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[6])  # the face moves within a clip
    still = TalkingWarp(image, lm).render(np.zeros((2, 468, 3), np.float32))
    assert still.tobytes() == np.stack([image, image]).tobytes()  # no motion, no change


def test_mediapipe_sees_the_rendered_face_talk(photos: list[tuple[np.ndarray, np.ndarray]], bank: MotionBank) -> None:
    """MediaPipe (VIDEO mode, padded as the extractor pads small videos) finds the face in
    (nearly) every rendered frame; its inner lips part and close as the motion says, far more
    than its jitter on the still, while the rigid anchors stay where the photo has them."""
    opts = default_options()
    moving_mouths = 0
    for image, lm in photos:
        warp = TalkingWarp(image, lm)
        motion, _ = sample_motion(bank, 25, np.random.default_rng(11))
        frames = warp.render(motion)
        target = np.linalg.norm(warp.moved_landmarks(motion)[:, 13] - warp.moved_landmarks(motion)[:, 14], axis=1)

        def detect(seq: np.ndarray) -> list[np.ndarray]:
            with FaceLandmarkDetector(opts, running_mode="video") as det:
                return [f[0].points for k, img in enumerate(seq) if (f := det.detect_for_video(img, 40 * k))]

        moving = detect(frames)
        still = detect(np.stack([image] * 25))
        assert len(moving) >= 23 and len(still) >= 23
        aperture = np.array([np.linalg.norm(p[13, :2] - p[14, :2]) for p in moving])
        jitter = np.array([np.linalg.norm(p[13, :2] - p[14, :2]) for p in still]).std()
        eyes = np.linalg.norm(lm[33, :2] - lm[263, :2])
        anchors = np.array([np.linalg.norm(p[ANCHOR_INDEX, :2] - lm[ANCHOR_INDEX, :2], axis=1).mean() for p in moving])
        assert np.median(anchors) < 0.08 * eyes, f"anchors moved {np.median(anchors):.2f} px (eyes {eyes:.1f} px apart)"
        if aperture.std() > max(5 * jitter, 0.3) and aperture.std() > 0.3 * target.std():
            moving_mouths += 1
    assert moving_mouths >= len(photos) - 1


@pytest.fixture(scope="module")
def rendered(shared_data: Path, bank: MotionBank, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A RAF-DB subset (6 photos per label), a small config over it and the tool's output."""
    root = tmp_path_factory.mktemp("render_talking")
    raf = imagefolder(shared_data / "rafdb" / "train", root / "rafdb", RAF_LABELS, 6)
    talking = [str(shared_data / "video" / "talking" / c) for c in CLIPS]
    cfg = root / "train.yaml"
    cfg.write_text(
        f"""
data:
  sources:
    - {{path: "{raf}", name: rafdb}}
  cache_dir: "{session_cache(tmp_path_factory)}"
  validation_fraction: 0.3
  calibration_fraction: 0.2
  split_seed: 0
  workers: 0
  motion: {{sources: {json.dumps(talking)}, scale: [0.5, 1.5], mirror: true}}
model:
  blendshapes: false
"""
    )
    out = root / "out"
    rc = _tool().main(["--config", str(cfg), "--per-label", "50", "--frames", "8", "--output", str(out), "--quiet"])
    assert rc == 0
    return raf, cfg, out


def test_tool_renders_only_training_photos_and_keeps_labels(rendered: tuple[Path, Path, Path]) -> None:
    raf, _cfg, out = rendered
    photos = discover(raf).samples
    split = dict(zip((s.path.stem for s in photos), group_split([f"rafdb:{s.group}" for s in photos], [0.3, 0.2], seed=0)))
    label = {s.path.stem: s.label for s in photos}
    clips = discover(out)
    assert clips.layout == "imagefolder" and clips.samples and not clips.skipped
    assert {split[s] for s in split} == {0, 1, 2}  # the subset has held-out photos ...
    stems = [c.path.stem.removeprefix("rafdb_").rsplit("_", 1)[0] for c in clips.samples]
    assert all(split[s] == 0 for s in stems)  # ... and none of them was rendered
    assert [c.label for c in clips.samples] == [label[s] for s in stems]
    manifest = json.loads((out / ".render_talking.json").read_text())
    assert sorted(c["clip"] for c in manifest["clips"]) == sorted(str(c.path.relative_to(out)) for c in clips.samples)
    assert all(c["split"] == "train" and c["group"] == f"rafdb:{Path(c['photo']).stem}" for c in manifest["clips"])


def test_extractor_reads_the_rendered_clips(rendered: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    _raf, _cfg, out = rendered
    res = extract_dataset(out, session_cache(tmp_path_factory), default_options(), workers=0, progress=False)
    assert not res.failed and len(res.samples) == len(discover(out).samples)
    assert all(s.n_frames == 8 and s.fps == pytest.approx(25.0) and s.frame_size == (100, 100) for s in res.samples)
    frames = sum(s.n_frames for s in res.samples)
    assert sum(int(s.detected.sum()) for s in res.samples) >= 0.9 * frames


def test_tool_is_reproducible_and_refuses_bad_input(rendered: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    _raf, cfg, out = rendered
    tool = _tool()
    again = tmp_path / "again"
    assert tool.main(["--config", str(cfg), "--per-label", "50", "--frames", "8", "--output", str(again), "--quiet"]) == 0
    for clip in sorted(out.rglob("*.mkv"))[:3]:
        a, b = cv2.VideoCapture(str(clip)), cv2.VideoCapture(str(again / clip.relative_to(out)))
        for _ in range(8):
            (ok_a, fa), (ok_b, fb) = a.read(), b.read()
            assert ok_a and ok_b and fa.tobytes() == fb.tobytes()
    capsys.readouterr()
    assert tool.main(["--config", str(cfg), "--sources", "nope", "--output", str(tmp_path / "x"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: source 'nope' is not in the config")
    assert tool.main(["--config", str(cfg), "--per-label", "3", "--frames", "8", "--output", str(out), "--quiet"]) == 2
    assert "other options" in capsys.readouterr().err
    assert tool.main(["--config", str(tmp_path / "none.yaml"), "--output", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: config not found")
    assert tool.main(["--config", str(cfg), "--border", "1.5", "--output", str(tmp_path / "z"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --border must be in [0, 1]")


def test_border_gives_the_photo_room_and_keeps_its_landmarks(photos: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """``with_border`` frames the photo with a replicated border (the photo unchanged in the
    middle) and shifts its landmarks by the border: MediaPipe finds the face where they say."""
    from realtime_fer.data.render_talking import with_border

    image, lm = photos[1]
    framed, moved = with_border(image, lm, 0.3)
    pad = 30
    assert framed.shape == (image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, 3)
    assert np.array_equal(framed[pad:-pad, pad:-pad], image)
    np.testing.assert_allclose(moved[:, :2], lm[:, :2] + pad, atol=1e-4)
    np.testing.assert_array_equal(moved[:, 2], lm[:, 2])
    with FaceLandmarkDetector(default_options(), running_mode="image") as det:
        found = det.detect(framed)
    assert found
    eyes = np.linalg.norm(lm[33, :2] - lm[263, :2])
    assert np.median(np.linalg.norm(found[0].points[:468, :2] - moved[:468, :2], axis=1)) < 0.08 * eyes
    same, same_lm = with_border(image, lm, 0.0)
    assert same is image or np.array_equal(same, image)
    with pytest.raises(ValueError):
        with_border(image, lm, -0.1)
