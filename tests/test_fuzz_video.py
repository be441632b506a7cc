"""Fuzzing the capture layer and ``analyze`` with corrupt videos and odd images.

A seeded fuzzer (the same cases on every run) makes, from real shared videos: files truncated
at random offsets, files with random bytes flipped, random bytes with video suffixes, and the
header alone; plus odd images and videos written with OpenCV (1x1, odd widths, grayscale,
4-channel, 16-bit). Every case goes through :func:`~realtime_fer.capture.open_source` and a
:class:`~realtime_fer.capture.CaptureThread` in a child process (so a decoder crash cannot
take pytest down, and a hang is caught by a timeout): it must either fail to open with a
:class:`~realtime_fer.errors.SourceError`, or deliver HxWx3 uint8 frames and end by itself
("end of file"/"end of image") with no capture error. Arrays of odd formats also go straight
into the landmarker (``detect``): a FerError or a result, never another exception. A few
cases run through ``realtime-fer analyze`` as a user would.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from realtime_fer.errors import FerError
from runtime_helpers import model_cli_args, require_bundle
from test_fuzz_common import fuzz_report, tried  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
SEED = 20260
CASE_TIMEOUT_S = 20.0
#: Real videos the corruptions start from (small ones: every case is decoded to the end).
BASES = ["video/mead/neutral.mp4", "video/mead/contempt.mp4", "video/pyfeat/single_face.mp4", "video/pyfeat/face_noface.mov"]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from realtime_fer.capture import CaptureThread, open_source
    from realtime_fer.errors import SourceError

    for path in sys.argv[2:]:
        print(json.dumps({"start": path}), flush=True)
        out = {"path": path}
        try:
            source = open_source(path)
        except SourceError as exc:
            out.update(outcome="open_error", message=str(exc))
        except Exception as exc:
            out.update(outcome="crash", message=f"{type(exc).__name__}: {exc}")
        else:
            cap = CaptureThread(source)
            cap.start()
            deadline = time.monotonic() + float(sys.argv[1])
            frames, bad, hung = 0, [], False
            for frame in cap:
                img = frame.image
                if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.size):
                    bad.append(f"{getattr(img, 'dtype', None)} {getattr(img, 'shape', None)}")
                frames += 1
                if time.monotonic() > deadline:
                    hung = True
                    break
            cap.stop()
            out.update(outcome="hang" if hung else "read", frames=frames, announced=source.frame_count, end_reason=cap.end_reason, error=repr(cap.error) if cap.error else None, bad=bad[:3], kind=source.kind)
        print(json.dumps(out), flush=True)
    """
)


def _streamable_bases(shared: Path, folder: Path) -> list[Path]:
    """Copies of a real clip whose index is at the start (MP4 ``faststart``, and MJPEG AVI),
    so that a truncated copy still opens and ends early: the case where frames are lost."""
    import cv2

    out: list[Path] = []
    src = shared / "video" / "mead" / "neutral.mp4"
    try:
        import imageio_ffmpeg

        fast = folder / "base_faststart.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(src), "-c", "copy", "-movflags", "+faststart", str(fast)], check=True, timeout=60)
        out.append(fast)
    except (ImportError, subprocess.SubprocessError, OSError):
        pass
    cap = cv2.VideoCapture(str(src))
    avi = folder / "base_mjpeg.avi"
    writer = None
    for _ in range(40):
        ok, img = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (img.shape[1], img.shape[0]))
        writer.write(img)
    cap.release()
    if writer is not None:
        writer.release()
        out.append(avi)
    return out


def _corruptions(shared: Path, folder: Path, n_per_base: int) -> list[tuple[str, Path]]:
    """(kind, file) cases, seeded."""
    rng = random.Random(SEED)
    cases: list[tuple[str, Path]] = []
    bases = [shared / rel for rel in BASES] + _streamable_bases(shared, folder)
    for b, src in enumerate(bases):
        if not src.is_file():
            continue
        data = src.read_bytes()
        suffix = src.suffix
        for i in range(n_per_base):
            kind = ["truncated", "flipped", "truncated", "flipped", "random", "header"][i % 6]
            if kind == "truncated":
                raw = data[: rng.randrange(0, len(data))]
            elif kind == "flipped":
                buf = bytearray(data)
                for _ in range(rng.choice([1, 10, 100, 1000])):
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
                raw = bytes(buf)
            elif kind == "random":
                raw = rng.randbytes(rng.choice([0, 1, 100, 5000, 200_000]))
            else:
                raw = data[: rng.choice([8, 32, 64, 512, 4096])]
            path = folder / f"{kind}_{b}_{i}{rng.choice([suffix, suffix, '.avi', '.jpg'] if kind == 'random' else [suffix])}"
            path.write_bytes(raw)
            cases.append((kind, path))
    return cases


def _odd_media(folder: Path) -> list[tuple[str, Path]]:
    """Images and videos of odd sizes and colour formats, written with OpenCV."""
    import cv2

    rng = np.random.default_rng(SEED)
    cases: list[tuple[str, Path]] = []
    images = {
        "1x1.png": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
        "1x1.jpg": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
        "odd_17x9.png": rng.integers(0, 256, (9, 17, 3), dtype=np.uint8),
        "thin_1x3000.png": rng.integers(0, 256, (1, 3000, 3), dtype=np.uint8),
        "gray.png": rng.integers(0, 256, (31, 33), dtype=np.uint8),
        "rgba.png": rng.integers(0, 256, (20, 21, 4), dtype=np.uint8),
        "16bit.png": rng.integers(0, 65536, (24, 25, 3), dtype=np.uint16),
        "16bit_gray.tiff": rng.integers(0, 65536, (24, 25), dtype=np.uint16),
        "float.tiff": rng.random((12, 13, 3), dtype=np.float32),
        "rgba_named_mp4.mp4": rng.integers(0, 256, (20, 21, 4), dtype=np.uint8),  # an image with a video suffix
    }
    for name, img in images.items():
        path = folder / name
        ext = ".png" if name.endswith(".mp4") else path.suffix
        ok, buf = cv2.imencode(ext, img)
        assert ok, name
        path.write_bytes(buf.tobytes())
        cases.append(("odd_image", path))
    for name, (w, h, color) in {"odd_3x5.avi": (3, 5, True), "odd_641x361.avi": (641, 361, True), "gray_32x24.avi": (32, 24, False), "tiny_2x2.avi": (2, 2, True)}.items():
        path = folder / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h), isColor=color)
        if not writer.isOpened():
            continue
        for _ in range(5):
            writer.write(rng.integers(0, 256, (h, w, 3) if color else (h, w), dtype=np.uint8))
        writer.release()
        if path.is_file() and path.stat().st_size:
            cases.append(("odd_video", path))
    return cases


def _run_child(paths: list[Path]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(CASE_TIMEOUT_S), *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=CASE_TIMEOUT_S * len(paths) + 60,
    )
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [r["start"] for r in records if "start" in r]
    assert proc.returncode == 0, f"the capture child died (rc {proc.returncode}) on {started[-1] if started else '?'}: {proc.stderr[-1500:]}"
    return [r for r in records if "outcome" in r]


def _check(results: list[dict], kinds: dict[str, str]) -> None:
    for r in results:
        kind = kinds[r["path"]]
        assert r["outcome"] in ("open_error", "read"), r
        if r["outcome"] == "open_error":
            msg = r["message"]
            assert msg and "\n" not in msg and "Traceback" not in msg, r
        else:
            assert r["error"] is None, r
            assert not r["bad"], r
            assert r["end_reason"] in ("end of file", "end of image"), r
        if r["outcome"] == "open_error":
            outcome = "open error"
        elif r["announced"] and r["frames"] < r["announced"]:
            outcome = "read, frames lost"
        else:
            outcome = "read"
        tried(f"video files ({kind})", outcome)


def test_corrupt_videos_fail_to_open_or_read_to_the_end(shared_data: Path, tmp_path: Path) -> None:
    cases = _corruptions(shared_data, tmp_path, n_per_base=30)
    assert len(cases) >= 120, "the base videos are missing from ../shared/data"
    results = _run_child([p for _, p in cases])
    assert len(results) == len(cases)
    _check(results, {str(p): k for k, p in cases})


def test_odd_sizes_and_colour_formats_through_the_capture_layer(tmp_path: Path) -> None:
    cases = _odd_media(tmp_path)
    results = _run_child([p for _, p in cases])
    assert len(results) == len(cases)
    _check(results, {str(p): k for k, p in cases})
    by_name = {Path(r["path"]).name: r for r in results}
    for name in ("1x1.png", "gray.png", "rgba.png", "16bit.png", "16bit_gray.tiff"):
        assert by_name[name]["outcome"] == "read" and by_name[name]["frames"] == 1, by_name[name]  # converted to 8-bit BGR
    assert by_name["rgba_named_mp4.mp4"]["frames"] == 1  # a PNG named .mp4: FFmpeg reads it as a one-frame video


def test_odd_arrays_into_the_landmarker() -> None:
    """Arrays the capture layer never makes but a library user might pass to ``detect``."""
    from realtime_fer.landmarks.detector import FaceLandmarkDetector

    rng = np.random.default_rng(SEED)
    arrays = {
        "1x1 BGR": np.zeros((1, 1, 3), np.uint8),
        "odd 17x9": rng.integers(0, 256, (9, 17, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (30, 31), dtype=np.uint8),
        "BGRA": rng.integers(0, 256, (30, 31, 4), dtype=np.uint8),
        "16-bit": rng.integers(0, 65536, (30, 31, 3), dtype=np.uint16),
        "float": rng.random((30, 31, 3), dtype=np.float32),
        "2 channels": rng.integers(0, 256, (30, 31, 2), dtype=np.uint8),
        "1 channel": rng.integers(0, 256, (30, 31, 1), dtype=np.uint8),
        "empty": np.zeros((0, 5, 3), np.uint8),
        "4-d": np.zeros((2, 3, 4, 3), np.uint8),
        "non-contiguous": rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)[::2, ::3],
        "not an array": [[1, 2, 3]],
    }
    with FaceLandmarkDetector() as det:
        for name, arr in arrays.items():
            try:
                faces = det.detect(arr)  # type: ignore[arg-type]
            except FerError as exc:
                assert str(exc) and "\n" not in str(exc), name
                tried("odd arrays (landmarker)", "rejected")
            else:
                assert isinstance(faces, list), name
                tried("odd arrays (landmarker)", "accepted")


def _analyze(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "realtime_fer", "analyze", str(source), "--output", str(out), *model_cli_args()],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )


def test_analyze_on_corrupt_and_odd_files(shared_data: Path, tmp_path: Path) -> None:
    """Through the CLI: one ``error:`` line and no output file, or a complete output file."""
    require_bundle()
    data = (shared_data / "video" / "mead" / "neutral.mp4").read_bytes()
    rng = random.Random(SEED)
    buf = bytearray(data)
    for _ in range(200):
        buf[rng.randrange(4096, len(buf))] = rng.randrange(256)
    inputs = {
        "truncated.mp4": data[: len(data) // 3],
        "header_only.mp4": data[:64],
        "random.mp4": rng.randbytes(50_000),
        "flipped.mp4": bytes(buf),
    }
    folder = tmp_path / "in"
    folder.mkdir()
    for name, raw in inputs.items():
        (folder / name).write_bytes(raw)
    for kind, path in _odd_media(folder):
        if path.name in ("1x1.png", "gray.png", "16bit.png", "odd_3x5.avi"):
            inputs[path.name] = b""
    cut_short = []
    for base in _streamable_bases(shared_data, tmp_path):
        name = f"cut_short_{base.name}"
        raw = base.read_bytes()
        (folder / name).write_bytes(raw[: len(raw) // 2])
        inputs[name] = b""
        cut_short.append(name)
    for name in inputs:
        out_dir = tmp_path / f"out_{name}"
        out_dir.mkdir()
        r = _analyze(folder / name, out_dir / "out.jsonl")
        assert "Traceback" not in r.stderr + r.stdout, (name, r.stderr[-2000:])
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        if r.returncode == 0:
            assert not errors, (name, r.stderr[-2000:])
            lines = (out_dir / "out.jsonl").read_text().splitlines()
            assert json.loads(lines[-1])["event"] == "ended", name
            assert sorted(p.name for p in out_dir.iterdir()) == ["out.jsonl"]
            if name in cut_short:  # frames lost at the end: skipped and counted
                assert "skipped: the file announces" in r.stdout, (name, r.stdout)
            tried("analyze CLI (corrupt/odd files)", "analyzed")
        else:
            assert r.returncode == 2 and len(errors) == 1, (name, r.returncode, r.stderr[-2000:])
            assert list(out_dir.iterdir()) == [], (name, list(out_dir.iterdir()))
            tried("analyze CLI (corrupt/odd files)", "error line")
