#!/usr/bin/env python3
"""Render the training stills of a config into short talking videos: a labelled video dataset.

    python tools/render_talking.py --per-label 300 --output runs/rendered_rafdb
    realtime-fer extract runs/rendered_rafdb --blendshapes --workers 1

Each photo's pixels are warped along real talking motion (``realtime_fer.data.render_talking``:
the config's ``data.motion`` clips, its ``scale`` and ``mirror``), so that MediaPipe, run on the
rendered frames, gives landmarks and blendshapes that move together as in real video.

Only photos of the **training split** are rendered: the sources are loaded through the landmark
cache (``load_sources``) and split with ``group_split(groups, [validation_fraction,
calibration_fraction], seed=split_seed)`` exactly as ``realtime-fer train`` does (sources with
role ``train``/``blendshape_model`` are training-only there, and here). The motion comes from
the clips the trainer uses for training windows (with ``calibrate_with_motion``, the clips it
keeps for calibration are not used).

Output (ImageFolder, read unchanged by ``discover``/``extract``/``evaluate``):
``OUTPUT/<label>/<source>_<photo stem>_<copy>.mkv`` (lossless FFV1; ``--codec mjpg``: .avi),
at the photo's own size and ``--fps``; ``OUTPUT/.render_talking.json`` (hidden, so discovery
skips it) lists every clip with its source photo, group and split. Clips that exist are kept,
so an interrupted run resumes (the options must be the same).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("render_talking")

CODECS = {"ffv1": ("FFV1", ".mkv"), "mjpg": ("MJPG", ".avi")}
MANIFEST = ".render_talking.json"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < v <= 1000.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1000], got {v}")
    return v


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", default="configs/train_default.yaml", help="training config (its sources, split and data.motion)")
    ap.add_argument("--sources", default="rafdb", help="comma-separated source names of the config (default: rafdb)")
    ap.add_argument("--per-label", type=_positive_int, default=300, metavar="N", help="photos per label at most, spread evenly (default 300)")
    ap.add_argument("--frames", type=_positive_int, default=25, help="frames per clip (default 25: 1 s at 25 fps)")
    ap.add_argument("--copies", type=_positive_int, default=1, help="clips per photo, each with its own motion (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the motion draws (default 0)")
    ap.add_argument("--fps", type=_positive_float, default=25.0, help="frame rate of the clips (default 25; the talking clips' 30 fps motion is resampled)")
    ap.add_argument("--codec", choices=sorted(CODECS), default="ffv1", help="ffv1: lossless .mkv (default); mjpg: .avi at quality 100")
    ap.add_argument("--border", type=float, default=0.0, metavar="FRACTION", help="frame each photo with a replicated border of this share of its longer side before warping, so a chin at the crop's edge can move (default 0)")
    ap.add_argument("--no-mouth-cavity", action="store_true", help="do not darken the inside of a mouth that opens (see TalkingWarp)")
    ap.add_argument("--output", required=True, help="output folder (ImageFolder of clips)")
    ap.add_argument("--quiet", action="store_true", help="no progress output")
    return ap.parse_args(argv)


def training_photos(config: Any, names: list[str], progress: bool) -> tuple[list[Any], list[str], dict[str, int]]:
    """The training-split image samples of the named sources of ``config`` (as ``prepare``
    splits them), their qualified groups (``source:group``) and counts of what was left out."""
    import numpy as np

    from realtime_fer.errors import DataError
    from realtime_fer.training.splits import group_split
    from realtime_fer.training.trainer import TRAIN, load_sources

    known = {src.name or Path(src.path).name: src for src in config.data.sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"source {', '.join(map(repr, unknown))} is not in the config (its sources: {', '.join(known)})")
    config.data.sources = [known[n] for n in names]
    data = load_sources(config, progress=progress)
    split = group_split(data.groups, [config.data.validation_fraction, config.data.calibration_fraction], seed=config.data.split_seed)
    train_only = {n for n, src in known.items() if n in names and src.role in ("train", "blendshape_model")}
    split = np.where([g.split(":", 1)[0] in train_only for g in data.groups], TRAIN, split)
    keep = [i for i in range(len(data.samples)) if split[i] == TRAIN and data.samples[i].ref.kind == "image"]
    left_out = {
        "not training split": int(np.sum(split != TRAIN)),
        "not an image": sum(1 for i in range(len(data.samples)) if split[i] == TRAIN and data.samples[i].ref.kind != "image"),
    }
    return [data.samples[i] for i in keep], [str(data.groups[i]) for i in keep], left_out


def spread(items: list[Any], n: int) -> list[Any]:
    """``n`` items evenly spaced over ``items`` (all of them when there are no more than ``n``)."""
    import numpy as np

    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))]


def write_clip(path: Path, frames: Any, fps: float, codec: str) -> None:
    """Write ``frames`` (n, H, W, 3) uint8 BGR to ``path`` (atomically: written in the hidden
    folder ``.tmp`` beside the label folders, which discovery skips, and renamed when complete)."""
    import cv2

    fourcc, ext = CODECS[codec]
    tmp_dir = path.parent.parent / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{path.parent.name}_{path.stem}{ext}"
    h, w = frames.shape[1:3]
    api = cv2.CAP_OPENCV_MJPEG if codec == "mjpg" else cv2.CAP_FFMPEG
    writer = cv2.VideoWriter(str(tmp), api, cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(w), int(h)))
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write {codec} video to {tmp}")
        if codec == "mjpg":
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
        for f in frames:
            writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise OSError(f"OpenCV wrote no video to {tmp}")
    os.replace(tmp, path)


def _read_image(path: Path) -> Any:
    import cv2
    import numpy as np

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise OSError(f"cannot decode image {path}")
    return image


def _advance(total: int, enabled: bool) -> tuple[Any, Any]:
    """A rich progress bar on a terminal, else a log line every 10%; returns ``(advance, close)``."""
    if enabled:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        if console.is_terminal:
            bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            bar.start()
            task = bar.add_task("render", total=total)
            return (lambda: bar.advance(task)), bar.stop
    state = {"done": 0, "t0": time.perf_counter()}
    step = max(1, total // 10)

    def advance() -> None:
        state["done"] += 1
        if enabled and (state["done"] % step == 0 or state["done"] == total):
            log.info("rendered %d/%d photos (%.0f s)", state["done"], total, time.perf_counter() - state["t0"])

    return advance, (lambda: None)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime_fer.data.render_talking import MOTION_FPS, TalkingWarp, clip_rng, sample_motion, with_border
    from realtime_fer.errors import DataError
    from realtime_fer.training.config import load_train_config
    from realtime_fer.training.trainer import motion_banks

    names = [n.strip() for n in args.sources.split(",") if n.strip()]
    if not names:
        raise DataError("--sources names no source")
    if not Path(args.config).is_file():
        raise DataError(f"config not found: {args.config}")
    config = load_train_config(args.config)
    if not config.data.motion.sources:
        raise DataError(f"{args.config} has no data.motion.sources (clips of people talking) to take the motion from")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DataError(f"--output {out} exists and is not a folder")
    settings = {
        "config": str(args.config),
        "sources": names,
        "per_label": args.per_label,
        "frames": args.frames,
        "copies": args.copies,
        "seed": args.seed,
        "fps": args.fps,
        "motion_fps": MOTION_FPS,
        "codec": args.codec,
        "mouth_cavity": not args.no_mouth_cavity,
        **({"border": args.border} if args.border else {}),
        "motion_scale": list(config.data.motion.scale),
        "motion_mirror": bool(config.data.motion.mirror),
        "split": {"validation_fraction": config.data.validation_fraction, "calibration_fraction": config.data.calibration_fraction, "split_seed": config.data.split_seed},
    }
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            before = json.loads(manifest_path.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {manifest_path}: {exc}") from None
        if before != settings:
            raise DataError(f"{out} holds clips rendered with other options ({manifest_path}); choose another --output or remove it")
    elif out.is_dir() and any(out.iterdir()):
        raise DataError(f"--output {out} is not empty and was not written by this tool")

    if not (0.0 <= args.border <= 1.0):
        raise DataError(f"--border must be in [0, 1], got {args.border}")
    progress = not args.quiet
    photos, groups, left_out = training_photos(config, names, progress)
    by_label: dict[str, list[int]] = {}
    for i, s in enumerate(photos):
        by_label.setdefault(s.ref.label, []).append(i)
    chosen = [i for label in sorted(by_label) for i in spread(sorted(by_label[label], key=lambda j: str(photos[j].ref.path)), args.per_label)]
    if not chosen:
        raise DataError("no training photo with a face in the chosen sources")
    log.info(
        "%d training photos (%s left out as validation/calibration), rendering %d: %s",
        len(photos),
        left_out["not training split"],
        len(chosen),
        ", ".join(f"{lb} {min(len(v), args.per_label)}" for lb, v in sorted(by_label.items())),
    )
    train_motion, _cal = motion_banks(config, progress=False)
    assert train_motion is not None
    bank, motion_opts = train_motion
    log.info("motion: %d talking clips (%d frames) for training", bank.n_clips, len(bank.frames))

    _fourcc, ext = CODECS[args.codec]
    clips: list[dict[str, Any]] = []
    advance, close = _advance(len(chosen), progress)
    t_render = 0.0
    n_frames_rendered = 0
    n_written = 0
    try:
        for i in chosen:
            s = photos[i]
            source, group = groups[i].split(":", 1)
            targets = [out / s.ref.label / f"{source}_{s.ref.path.stem}_{k}{ext}" for k in range(args.copies)]
            if not all(t.is_file() for t in targets):
                image = _read_image(s.ref.path)
                if (image.shape[1], image.shape[0]) != tuple(s.frame_size):
                    raise DataError(f"{s.ref.path}: image is {image.shape[1]}x{image.shape[0]} but its cached landmarks are for {s.frame_size[0]}x{s.frame_size[1]}")
                t0 = time.perf_counter()
                image, landmarks = with_border(image, s.landmarks[0], args.border)
                warp = TalkingWarp(image, landmarks, mouth_cavity=not args.no_mouth_cavity)
                t_render += time.perf_counter() - t0
                for k, target in enumerate(targets):
                    if target.is_file():
                        continue
                    motion, _blend = sample_motion(bank, args.frames, clip_rng(args.seed, groups[i], k), scale=motion_opts.scale, mirror=motion_opts.mirror, fps=args.fps)
                    t0 = time.perf_counter()
                    frames = warp.render(motion)
                    t_render += time.perf_counter() - t0
                    n_frames_rendered += len(frames)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_clip(target, frames, args.fps, args.codec)
                    n_written += 1
            for k, target in enumerate(targets):
                clips.append({"clip": str(target.relative_to(out)), "label": s.ref.label, "source": source, "group": groups[i], "photo": str(s.ref.path), "copy": k, "split": "train"})
            advance()
    finally:
        close()
        try:
            (out / ".tmp").rmdir()  # empty unless a write failed
        except OSError:
            pass
        if clips:
            out.mkdir(parents=True, exist_ok=True)
            tmp = out / f".{MANIFEST}.tmp"
            tmp.write_text(json.dumps({"settings": settings, "n_clips": len(clips), "clips": clips}, indent=1), encoding="utf-8")
            os.replace(tmp, manifest_path)
    counts: dict[str, int] = {}
    for c in clips:
        counts[c["label"]] = counts.get(c["label"], 0) + 1
    per_frame = f", {1e3 * t_render / n_frames_rendered:.2f} ms per frame (warp set-up included)" if n_frames_rendered else ""
    print(f"{len(clips)} clips ({n_written} written now{per_frame}) -> {out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from realtime_fer.errors import FerError

    try:
        return run(args)
    except (FerError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
