"""Finding the labelled samples in a dataset folder, whatever its layout.

:func:`discover` detects the layout of ``DATA_DIR`` and returns a :class:`Discovery`: the
labelled :class:`SampleRef` objects plus the files it skipped and why. Supported layouts:

``imagefolder``
    ``DATA_DIR/<label>/...`` with images and/or videos at any depth below the label folder.
    A label folder with an unknown name is an error (a typo must not go unnoticed).
``ckplus``
    The original CK+ release: ``cohn-kanade-images/S005/001/*.png`` plus
    ``Emotion/S005/001/S005_001_00000011_emotion.txt``. Each labelled sequence gives one
    ``sequence`` sample (its last 3 frames, the apex) and one neutral ``image`` (its first frame).
``ravdess``
    RAVDESS file names ``01-01-06-01-02-01-12.mp4`` (modality-channel-emotion-intensity-
    statement-repetition-actor), at any depth.
``cremad``
    CREMA-D file names ``1001_DFA_ANG_XX.flv`` (actor_sentence_emotion_level), at any depth.
``named``
    Images/videos directly in ``DATA_DIR`` whose name starts with a label: ``happy.mp4``,
    ``sad_m030_1080p.mp4``.

Every sample carries a ``group`` (subject/actor id) so that splits can keep one person's
samples on one side.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from realtime_fer.errors import DataError
from realtime_fer.labels import EMOTIONS, canonical_label, is_known_label

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg"})

SampleKind = Literal["image", "video", "sequence"]

#: CK+ emotion codes (``Emotion/**/*_emotion.txt``).
CKPLUS_CODES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sad",
    7: "surprise",
}
#: RAVDESS emotion codes (third field of the file name); "calm" counts as neutral.
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral",
    "02": "neutral",
    "03": "happy",
    "04": "sad",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
#: CREMA-D emotion codes (third field of the file name).
CREMAD_CODES: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
#: Number of apex frames kept per CK+ sequence.
CKPLUS_APEX_FRAMES = 3

_CKPLUS_NAME = re.compile(r"^(S\d+)_\d+_\d+$")
_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_CREMAD_NAME = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})$")
_TOKEN_SPLIT = re.compile(r"[_.\-]")
#: MEAD clips flattened to one name: ``<actor>_<view>_<emotion>_level<k>_<take>`` (W009_front_fear_level3_001).
_MEAD_NAME = re.compile(r"^([MW]\d{3})_([A-Za-z]+(?:_\d+)?)_([A-Za-z]+)_level_?(\d+)_(\d+)$")

SUPPORTED_LAYOUTS_HELP = (
    "supported layouts: ImageFolder (DATA_DIR/<label>/*.jpg|*.mp4 ...), the original CK+ release "
    "(DATA_DIR/cohn-kanade-images + DATA_DIR/Emotion), RAVDESS file names (01-01-06-01-02-01-12.mp4), "
    "CREMA-D file names (1001_DFA_ANG_XX.flv), and label-named files directly in DATA_DIR "
    f"(happy.mp4, sad_clip2.jpg); labels: {', '.join(EMOTIONS)}; image extensions: "
    f"{' '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))}; video extensions: "
    f"{' '.join(sorted(e[1:] for e in VIDEO_EXTENSIONS))}"
)


@dataclass(frozen=True)
class SampleRef:
    """One labelled sample of a dataset (not yet read)."""

    path: Path
    """The image or video file; for a ``sequence``, its folder."""
    label: str
    """Canonical label (see :data:`realtime_fer.labels.EMOTIONS`)."""
    group: str
    """Subject/actor id for grouped splits (``S005``, ``actor12``); a per-file id when unknown."""
    kind: SampleKind
    frames: tuple[Path, ...] = ()
    """For a ``sequence``: its image files in temporal order; empty otherwise."""
    dataset: str = ""
    """Name of the layout it was found by (``imagefolder``, ``ckplus``, ``ravdess``, ...)."""

    def files(self) -> tuple[Path, ...]:
        """The files whose bytes make up this sample (the frames of a sequence, else the path)."""
        return self.frames if self.kind == "sequence" else (self.path,)


@dataclass
class Discovery:
    """What :func:`discover` found in a dataset folder."""

    data_dir: Path
    layout: str
    samples: list[SampleRef] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` for every file or folder that was not used."""

    def counts(self) -> dict[str, int]:
        """Number of samples per label, in :data:`~realtime_fer.labels.EMOTIONS` order."""
        out = {label: 0 for label in EMOTIONS}
        for s in self.samples:
            out[s.label] += 1
        return {k: v for k, v in out.items() if v}


# -- helpers ------------------------------------------------------------------------------
def media_kind(path: Path) -> Literal["image", "video"] | None:
    """``"image"``/``"video"`` from the file extension, ``None`` for anything else."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name == "__MACOSX"


def _walk_files(root: Path) -> Iterator[Path]:
    """All files below ``root`` in a stable (sorted) order, following directory links once."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _file_group(path: Path) -> str:
    """Group id of a file without a known subject: the subject of CK+48 names
    (``S005_001_00000011`` -> ``S005``), else the file stem."""
    m = _CKPLUS_NAME.match(path.stem)
    return m.group(1) if m else path.stem


def _top_level(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """Sorted (non-hidden) sub-folders and files of ``data_dir``."""
    dirs, files = [], []
    for p in sorted(data_dir.iterdir()):
        if _is_hidden(p):
            continue
        (dirs if p.is_dir() else files).append(p)
    return dirs, files


def _has_media(folder: Path) -> bool:
    return any(media_kind(p) for p in _walk_files(folder))


# -- layouts --------------------------------------------------------------------------------
def _discover_imagefolder(data_dir: Path, dirs: list[Path], files: list[Path]) -> Discovery:
    out = Discovery(data_dir, "imagefolder")
    for f in files:
        out.skipped.append((str(f), "loose file at the top level (ImageFolder expects DATA_DIR/<label>/ folders)"))
    for d in dirs:
        if not is_known_label(d.name):
            if _has_media(d):
                raise DataError(_unknown_label_message(d, data_dir))
            out.skipped.append((str(d), "folder is not a known label and holds no images or videos"))
            continue
        label = canonical_label(d.name)
        for f in _walk_files(d):
            kind = media_kind(f)
            if kind is None:
                out.skipped.append((str(f), "not an image or video file"))
                continue
            out.samples.append(SampleRef(f, label, _file_group(f), kind, (), "imagefolder"))
    return out


def _unknown_label_message(folder: Path, data_dir: Path) -> str:
    msg = (
        f"folder {folder.name!r} in {data_dir} is not a known emotion label; known labels: "
        f"{', '.join(EMOTIONS)} (synonyms such as 'angry', 'surprised', 'happiness' are accepted); "
        "rename or remove the folder"
    )
    inner = [p.name for p in folder.iterdir() if p.is_dir() and is_known_label(p.name)]
    if inner:
        msg += f" (it holds label folders itself: did you mean DATA_DIR={folder}?)"
    return msg


def _ckplus_code(txt: Path) -> int:
    """The integer emotion code in a CK+ ``*_emotion.txt`` file (e.g. ``   3.0000000e+00``)."""
    value = float(txt.read_text(encoding="ascii", errors="replace").split()[0])
    code = int(round(value))
    if abs(value - code) > 1e-6 or code not in CKPLUS_CODES:
        raise ValueError(f"invalid emotion code {value!r}")
    return code


def _discover_ckplus(data_dir: Path) -> Discovery:
    out = Discovery(data_dir, "ckplus")
    images_root, emotion_root = data_dir / "cohn-kanade-images", data_dir / "Emotion"
    labelled: set[Path] = set()
    for txt in sorted(emotion_root.rglob("*.txt")):
        rel = txt.parent.relative_to(emotion_root)
        seq_dir = images_root / rel
        labelled.add(seq_dir)
        try:
            code = _ckplus_code(txt)
        except (ValueError, IndexError, OSError) as exc:
            out.skipped.append((str(txt), f"unreadable CK+ emotion file: {exc}"))
            continue
        frames = sorted(p for p in seq_dir.glob("*") if p.is_file() and media_kind(p) == "image") if seq_dir.is_dir() else []
        if not frames:
            out.skipped.append((str(seq_dir), f"no image frames for emotion file {txt.name}"))
            continue
        subject = rel.parts[0] if rel.parts else seq_dir.name
        label = CKPLUS_CODES[code]
        apex = tuple(frames[-CKPLUS_APEX_FRAMES:])
        out.samples.append(SampleRef(seq_dir, label, subject, "sequence", apex, "ckplus"))
        if len(frames) > CKPLUS_APEX_FRAMES:
            out.samples.append(SampleRef(frames[0], "neutral", subject, "image", (), "ckplus"))
        else:
            out.skipped.append((str(frames[0]), "sequence too short for a separate neutral first frame"))
    if images_root.is_dir():
        for subject in sorted(p for p in images_root.iterdir() if p.is_dir() and not _is_hidden(p)):
            for seq in sorted(p for p in subject.iterdir() if p.is_dir() and not _is_hidden(p)):
                if seq not in labelled:
                    out.skipped.append((str(seq), "CK+ sequence without an emotion label (no Emotion/ file)"))
    return out


def _discover_by_name(data_dir: Path, layout: Literal["ravdess", "cremad"]) -> Discovery:
    out = Discovery(data_dir, layout)
    ravdess_seen: dict[str, Path] = {}
    for f in _walk_files(data_dir):
        kind = media_kind(f)
        pattern = _RAVDESS_NAME if layout == "ravdess" else _CREMAD_NAME
        m = pattern.match(f.stem)
        if m is None:
            out.skipped.append((str(f), f"name does not follow the {layout.upper()} naming scheme"))
            continue
        if layout == "ravdess":
            modality, _channel, emotion, *_rest, actor = m.groups()
            if modality == "03":
                out.skipped.append((str(f), "audio-only recording (RAVDESS modality 03)"))
                continue
            if kind != "video":
                out.skipped.append((str(f), "not a video file"))
                continue
            if emotion not in RAVDESS_CODES:
                out.skipped.append((str(f), f"unknown RAVDESS emotion code {emotion}"))
                continue
            # 01 (audio-video) and 02 (video-only) files of one take hold the same frames.
            take = "-".join(m.groups()[1:])
            if take in ravdess_seen:
                out.skipped.append((str(f), f"same take as {ravdess_seen[take].name} (RAVDESS 01/02 copies share frames)"))
                continue
            ravdess_seen[take] = f
            out.samples.append(SampleRef(f, RAVDESS_CODES[emotion], f"actor{actor}", "video", (), "ravdess"))
        else:
            actor, _sentence, emotion, _level = m.groups()
            if kind is None:
                out.skipped.append((str(f), "not an image or video file"))
                continue
            if emotion.upper() not in CREMAD_CODES:
                out.skipped.append((str(f), f"unknown CREMA-D emotion code {emotion}"))
                continue
            out.samples.append(SampleRef(f, CREMAD_CODES[emotion.upper()], f"actor{actor}", kind, (), "cremad"))
    return out


def _discover_named(data_dir: Path, dirs: list[Path], files: list[Path]) -> Discovery:
    out = Discovery(data_dir, "named")
    for f in files:
        kind = media_kind(f)
        if kind is None:
            out.skipped.append((str(f), "not an image or video file"))
            continue
        mead = _MEAD_NAME.match(f.stem)
        if mead is not None and is_known_label(mead.group(3)):
            out.samples.append(SampleRef(f, canonical_label(mead.group(3)), mead.group(1), kind, (), "named"))
            continue
        token = _TOKEN_SPLIT.split(f.name, maxsplit=1)[0]
        if not is_known_label(token):
            out.skipped.append((str(f), f"file name does not start with a known label ({token!r}) nor follows MEAD's W009_front_fear_level3_001"))
            continue
        out.samples.append(SampleRef(f, canonical_label(token), _file_group(f), kind, (), "named"))
    for d in dirs:
        out.skipped.append((str(d), "sub-folder ignored (label-named files are read from DATA_DIR only)"))
    return out


def _count_name_matches(data_dir: Path) -> tuple[int, int]:
    """Numbers of files below ``data_dir`` named like RAVDESS and like CREMA-D files."""
    ravdess = cremad = 0
    for f in _walk_files(data_dir):
        if media_kind(f) is None and f.suffix.lower() != ".wav":
            continue
        if _RAVDESS_NAME.match(f.stem):
            ravdess += 1
        elif _CREMAD_NAME.match(f.stem):
            cremad += 1
    return ravdess, cremad


def detect_layout(data_dir: Path) -> str:
    """Name of the layout of ``data_dir`` (see the module docstring).

    Order: CK+ marker folders; any top-level folder named like a label -> ImageFolder; file
    names of RAVDESS / CREMA-D below it; label-named files at the top (or only loose media
    files); otherwise ImageFolder (whose unknown label folders are then reported as such).
    """
    if (data_dir / "cohn-kanade-images").is_dir() and (data_dir / "Emotion").is_dir():
        return "ckplus"
    dirs, files = _top_level(data_dir)
    if any(is_known_label(d.name) for d in dirs):
        return "imagefolder"
    ravdess, cremad = _count_name_matches(data_dir)
    if ravdess or cremad:
        return "ravdess" if ravdess >= cremad else "cremad"
    if any(media_kind(f) and is_known_label(_TOKEN_SPLIT.split(f.name, maxsplit=1)[0]) for f in files):
        return "named"
    if not dirs and any(media_kind(f) for f in files):
        return "named"  # loose media files only: report them as unlabelled names
    return "imagefolder"


def discover(data_dir: str | os.PathLike[str]) -> Discovery:
    """Find the labelled samples in ``data_dir`` (layout auto-detected).

    Raises:
        DataError: the folder does not exist, a label folder has an unknown name, or no usable
            sample was found (the message lists the supported layouts).
    """
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"dataset path is not a folder: {root}")
    layout = detect_layout(root)
    if layout == "ckplus":
        found = _discover_ckplus(root)
    elif layout in ("ravdess", "cremad"):
        found = _discover_by_name(root, layout)  # type: ignore[arg-type]
    else:
        dirs, files = _top_level(root)
        found = _discover_named(root, dirs, files) if layout == "named" else _discover_imagefolder(root, dirs, files)
    if not found.samples:
        raise DataError(
            f"no usable samples in {root} (detected layout: {layout}; {len(found.skipped)} file(s) skipped"
            + (f", e.g. {found.skipped[0][0]}: {found.skipped[0][1]}" if found.skipped else "")
            + f"); {SUPPORTED_LAYOUTS_HELP}"
        )
    found.samples.sort(key=lambda s: (str(s.path), s.kind))
    log.info("%s: %s layout, %d samples, %d skipped", root, layout, len(found.samples), len(found.skipped))
    return found
