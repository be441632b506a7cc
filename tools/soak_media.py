"""Real test media for the long-run tools (tools/bench_memory.py, tools/soak.py).

:func:`build_playlist` joins real clips of ../shared/data/video/pyfeat, where faces appear and
leave (a talking face, a room with nobody, a face walking in and out), re-encoded to one size
and frame rate, repeated ``cycles`` times into one file: a long run in which face tracks are
created and destroyed over and over.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

#: (clip under video/pyfeat, what it holds), in playlist order.
SEGMENTS = (
    ("WolfgangLanger_Pexels.mp4", "a talking face, 472 frames"),
    ("no_face.mp4", "nobody, 98 frames"),
    ("face_noface.mov", "a face that leaves, 169 frames"),
    ("single_face.mp4", "a face, 72 frames"),
    ("noface_face.mov", "a face that arrives, 169 frames"),
)
SIZE = (640, 360)
FPS = 24


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def build_playlist(data: Path, out: Path, cycles: int) -> Path:
    """Write ``cycles`` repetitions of :data:`SEGMENTS` as one MJPEG .avi at :data:`SIZE`, :data:`FPS`."""
    clips = [data / "video" / "pyfeat" / name for name, _ in SEGMENTS]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SystemExit(f"error: missing clips: {', '.join(missing)}")
    cmd = [ffmpeg(), "-loglevel", "error", "-y"]
    for _ in range(cycles):
        for clip in clips:
            cmd += ["-i", str(clip)]
    n = cycles * len(clips)
    w, h = SIZE
    parts = "".join(f"[{i}:v]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,fps={FPS},setsar=1[v{i}];" for i in range(n))
    joined = "".join(f"[v{i}]" for i in range(n))
    cmd += ["-filter_complex", f"{parts}{joined}concat=n={n}:v=1:a=0[out]", "-map", "[out]", "-c:v", "mjpeg", "-q:v", "5", str(out)]
    subprocess.run(cmd, check=True)
    return out
