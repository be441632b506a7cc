"""Dataset layout discovery on small trees built from the real files in ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from realtime_fer.data.layouts import SampleRef, discover
from realtime_fer.errors import DataError


def _ck_images(shared: Path, n: int) -> list[Path]:
    return sorted((shared / "ckplus48" / "happy").glob("*.png"))[:n]


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def _build_ckplus_original(shared: Path, root: Path) -> Path:
    """A CK+ release tree: S005/001 (5 frames, disgust), S010/002 (4 frames, surprise),
    S005/002 (unlabelled), a bad emotion file for S011/001."""
    imgs = _ck_images(shared, 5)
    for subject, seq, n in (("S005", "001", 5), ("S010", "002", 4), ("S005", "002", 4), ("S011", "001", 4)):
        for i in range(n):
            _link(imgs[i], root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{i + 1:08d}.png")
    for subject, seq, n, text in (("S005", "001", 5, "   3.0000000e+00\n"), ("S010", "002", 4, "   7.0000000e+00\n"), ("S011", "001", 4, "nonsense\n")):
        txt = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text(text)
    (root / "cohn-kanade-images" / "S005" / "001" / ".DS_Store").write_bytes(b"junk")
    return root


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder not found: .*nope"):
        discover(tmp_path / "nope")


def test_folder_without_samples_explains_layouts(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(DataError, match="no usable samples.*supported layouts: ImageFolder"):
        discover(tmp_path)


def test_imagefolder(shared_data: Path, tmp_path: Path) -> None:
    imgs = _ck_images(shared_data, 3)
    _link(imgs[0], tmp_path / "happy" / imgs[0].name)
    _link(imgs[1], tmp_path / "happy" / "deeper" / imgs[1].name)
    _link(imgs[2], tmp_path / "Angry" / "face.png")  # a synonym, any case
    _link(shared_data / "video" / "mead" / "sad.mp4", tmp_path / "sad" / "clip.mp4")
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("top-level file")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.txt").write_text("a folder without media")

    found = discover(tmp_path)

    assert found.layout == "imagefolder"
    by_name = {s.path.name: s for s in found.samples}
    assert set(by_name) == {imgs[0].name, imgs[1].name, "face.png", "clip.mp4"}
    assert by_name[imgs[0].name].label == "happy" and by_name[imgs[0].name].kind == "image"
    assert by_name[imgs[0].name].group == imgs[0].name.split("_")[0]  # CK+48 subject, e.g. S005
    assert by_name["face.png"].label == "anger" and by_name["face.png"].group == "face"
    assert by_name["clip.mp4"].kind == "video" and by_name["clip.mp4"].frames == ()
    assert {s.dataset for s in found.samples} == {"imagefolder"}
    skipped = {Path(p).name: reason for p, reason in found.skipped}
    assert "not an image or video" in skipped["notes.txt"]
    assert "README.md" in skipped and "docs" in skipped
    assert found.counts() == {"anger": 1, "happy": 2, "sad": 1}


def test_unknown_label_folder_names_it_and_the_known_labels(shared_data: Path, tmp_path: Path) -> None:
    imgs = _ck_images(shared_data, 2)
    _link(imgs[0], tmp_path / "happy" / "a.png")
    _link(imgs[1], tmp_path / "joyfull" / "b.png")
    with pytest.raises(DataError) as exc:
        discover(tmp_path)
    msg = str(exc.value)
    assert "'joyfull'" in msg and "anger, contempt, disgust, fear, happy, neutral, sad, surprise" in msg


def test_split_folder_above_labels_gets_a_hint(shared_data: Path, tmp_path: Path) -> None:
    _link(_ck_images(shared_data, 1)[0], tmp_path / "train" / "happy" / "a.png")
    with pytest.raises(DataError, match=r"'train'.*did you mean DATA_DIR=.*train"):
        discover(tmp_path)


def test_ckplus_original_layout(shared_data: Path, tmp_path: Path) -> None:
    root = _build_ckplus_original(shared_data, tmp_path / "CK+")

    found = discover(root)

    assert found.layout == "ckplus"
    seqs = [s for s in found.samples if s.kind == "sequence"]
    neutral = [s for s in found.samples if s.kind == "image"]
    assert [(s.group, s.label) for s in seqs] == [("S005", "disgust"), ("S010", "surprise")]
    s005 = seqs[0]
    assert s005.path == root / "cohn-kanade-images" / "S005" / "001"
    assert [f.name for f in s005.frames] == [f"S005_001_{i:08d}.png" for i in (3, 4, 5)]
    assert [(s.group, s.label, s.path.name) for s in neutral] == [
        ("S005", "neutral", "S005_001_00000001.png"),
        ("S010", "neutral", "S010_002_00000001.png"),
    ]
    reasons = " | ".join(f"{p}: {r}" for p, r in found.skipped)
    assert "S005/002: CK+ sequence without an emotion label" in reasons
    assert "S011_001_00000004_emotion.txt: unreadable CK+ emotion file" in reasons
    assert {s.dataset for s in found.samples} == {"ckplus"}


def test_ravdess_layout(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "video" / "mead" / "happy.mp4"
    actor = tmp_path / "Video_Speech_Actor_12" / "Actor_12"
    _link(video, actor / "01-01-06-01-02-01-12.mp4")  # fearful
    _link(video, actor / "02-01-06-01-02-01-12.mp4")  # video-only copy of the same take
    _link(video, actor / "01-02-02-02-01-02-12.mp4")  # calm -> neutral, song
    _link(video, tmp_path / "Actor_03" / "02-01-08-01-01-01-03.mp4")  # surprised
    (actor / "03-01-06-01-02-01-12.wav").write_bytes(b"RIFF")
    (actor / "notes.txt").write_text("x")

    found = discover(tmp_path)

    assert found.layout == "ravdess"
    got = sorted((s.path.name, s.label, s.group, s.kind) for s in found.samples)
    assert got == [
        ("01-01-06-01-02-01-12.mp4", "fear", "actor12", "video"),
        ("01-02-02-02-01-02-12.mp4", "neutral", "actor12", "video"),
        ("02-01-08-01-01-01-03.mp4", "surprise", "actor03", "video"),
    ]
    skipped = {Path(p).name: r for p, r in found.skipped}
    assert "audio-only" in skipped["03-01-06-01-02-01-12.wav"]
    assert "same take" in skipped["02-01-06-01-02-01-12.mp4"]
    assert "notes.txt" in skipped


def test_cremad_layout(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "video" / "mead" / "sad.mp4"
    _link(video, tmp_path / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    _link(video, tmp_path / "VideoFlash" / "1002_IEO_HAP_HI.flv")
    _link(video, tmp_path / "VideoFlash" / "1003_TIE_NEU_XX.flv")
    (tmp_path / "VideoFlash" / "1004_TIE_BOR_XX.flv").write_bytes(b"x")  # unknown emotion code

    found = discover(tmp_path)

    assert found.layout == "cremad"
    got = sorted((s.path.name, s.label, s.group) for s in found.samples)
    assert got == [
        ("1001_DFA_ANG_XX.flv", "anger", "actor1001"),
        ("1002_IEO_HAP_HI.flv", "happy", "actor1002"),
        ("1003_TIE_NEU_XX.flv", "neutral", "actor1003"),
    ]
    assert any("unknown CREMA-D emotion code BOR" in r for _, r in found.skipped)


def test_named_files_layout_on_mead(shared_data: Path) -> None:
    found = discover(shared_data / "video" / "mead")
    assert found.layout == "named"
    by_name = {s.path.name: s.label for s in found.samples}
    expected = {
        "contempt.mp4": "contempt", "disgust.mp4": "disgust", "fear.mp4": "fear", "happy.mp4": "happy",
        "neutral.mp4": "neutral", "sad.mp4": "sad", "sad_m030_1080p.mp4": "sad", "surprise.mp4": "surprise",
    }
    assert {k: by_name.get(k) for k in expected} == expected  # the folder may grow
    big = next(s for s in found.samples if s.path.name == "sad_m030_1080p.mp4")
    assert big.kind == "video" and big.group == "sad_m030_1080p" and big.dataset == "named"


def test_mead_names_give_label_and_actor(shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / "video" / "mead" / "fear.mp4"
    for name in ("W009_front_fear_level3_001.mp4", "M030_left_30_angry_level_1_002.mp4", "W009_front_calm_level1_003.mp4"):
        _link(clip, tmp_path / name)
    _link(clip, tmp_path / "W009_front_bored_level1_001.mp4")  # unknown emotion: skipped
    found = discover(tmp_path)
    got = {s.path.name: (s.label, s.group) for s in found.samples}
    assert got == {
        "W009_front_fear_level3_001.mp4": ("fear", "W009"),
        "M030_left_30_angry_level_1_002.mp4": ("anger", "M030"),
        "W009_front_calm_level1_003.mp4": ("neutral", "W009"),
    }
    assert [Path(p).name for p, _ in found.skipped] == ["W009_front_bored_level1_001.mp4"]


def test_named_files_with_unlabelled_names_only_is_an_error(shared_data: Path) -> None:
    with pytest.raises(DataError, match="no usable samples.*does not start with a known label"):
        discover(shared_data / "video" / "pyfeat")


def test_sample_refs_are_frozen_and_hashable(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(_ck_images(shared_data, 1)[0], tmp_path / "happy.png")
    ref = discover(tmp_path).samples[0]
    assert isinstance(ref, SampleRef) and ref.label == "happy" and len({ref, ref}) == 1
    with pytest.raises(AttributeError):
        ref.label = "sad"  # type: ignore[misc]
