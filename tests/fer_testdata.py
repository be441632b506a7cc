"""Small real data sets for the training/model tests, made of symlinks into ../shared/data.

Not a test module: helpers imported by ``test_models.py``, ``test_train_cli.py`` and others.
All of them extract landmarks into one landmark cache per pytest session
(:func:`session_cache`), so a CK+ image that one test module ran through MediaPipe is read
from the cache by the next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: CK+48 label folders (CK+ has no neutral).
CK_LABELS = ("anger", "contempt", "disgust", "fear", "happy", "sad", "surprise")
#: RAF-DB train label folders (RAF-DB has no contempt).
RAF_LABELS = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def link(src: Path, dst: Path) -> Path:
    """Symlink ``dst`` -> ``src`` (parents created)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def spread(files: list[Path], n: int) -> list[Path]:
    """``n`` files evenly spaced over the sorted list (CK+ names sort by subject, so this
    spreads the pick over many subjects)."""
    files = sorted(files)
    if len(files) <= n:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def imagefolder(src_root: Path, dst: Path, labels: tuple[str, ...], per_label: int) -> Path:
    """An ImageFolder at ``dst`` with ``per_label`` images of each label of ``src_root``,
    keeping the original file names (CK+ ``S###_...`` names carry the subject id)."""
    for label in labels:
        for p in spread([f for f in (src_root / label).iterdir() if f.is_file()], per_label):
            link(p, dst / label / p.name)
    return dst


def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One landmark cache folder shared by every test module of a pytest session."""
    path = tmp_path_factory.getbasetemp() / "fer_landmark_cache"
    path.mkdir(exist_ok=True)
    return path


def ck_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, per_label: int = 30) -> Path:
    """A CK+48 ImageFolder with ``per_label`` apex frames per label, S### names kept
    (the same files for every caller in a session, so their landmarks are cached once)."""
    dst = tmp_path_factory.getbasetemp() / f"ckplus48_subset_{per_label}"
    if not dst.exists():
        imagefolder(shared_data / "ckplus48", dst, CK_LABELS, per_label)
    return dst


def small_video_recipe(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, name: str, clips: tuple[str, ...]) -> dict[str, Path]:
    """A small real training set (CK+ subset, 20 RAF-DB photos per label) with a video recipe's
    train config, and a folder of MEAD ``clips`` named by their label: ``{"root", "config",
    "clips"}`` (the generalisation report's and the second-stage tool's tests)."""
    from test_train_cli import write_video_recipe_config

    root = tmp_path_factory.mktemp(name)
    srcs = {"ck": ck_subset(shared_data, tmp_path_factory), "raf": imagefolder(shared_data / "rafdb" / "train", root / "rafdb", RAF_LABELS, 20)}
    cfg = write_video_recipe_config(root / "train.yaml", srcs, session_cache(tmp_path_factory), shared_data / "video" / "talking", "  pooling: [mean, std]\n  blendshapes: true\n")
    for clip in clips:
        link(shared_data / "video" / "mead" / clip, root / "clips" / clip)
    return {"root": root, "config": cfg, "clips": root / "clips"}
