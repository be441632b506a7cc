#!/usr/bin/env python3
"""Windows in seconds, measured: time to the first decision at 10 and 30 fps, and which clips
get decisions (issue 18).

1. A real clip (default: ``video/talking/trump_clip1.mp4``, 30 fps, a face in every frame) is
   re-encoded at 10 and 30 fps (:func:`realtime_fer.capture.reencode.reencode`) and run through
   the live path (``open_recognizer``, every frame of the file, as ``analyze`` does). Time to
   first decision = source time of the face's first prediction minus that of its first frame
   (VIDEO-mode timestamps); also the first full-window decision and decisions per second. The
   frame-window rule of before (24 frames, a decision every 2 frames) is shown beside it,
   computed: ``(24 - 1) / fps`` at best.
2. Every clip of ``video/wild`` and 10 fps re-encodes of ``video/mead/*.mp4`` through the same
   live path: the clips with at least one decision (and partial ones), and the offline
   ``clip_windows`` count of the same clips (``evaluate``'s windows, ``partial=short``).

Run from the project root (about 2 minutes on 2 busy cores)::

    python tools/bench_window_time.py [--data ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_fer.capture.reencode import reencode  # noqa: E402
from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer  # noqa: E402
from realtime_fer.publish import Prediction, Status  # noqa: E402


def live_run(path: Path, config: RuntimeConfig) -> dict:
    """Every frame of ``path`` through the recognizer: per-face first frame and predictions."""
    first_seen: dict[int, float] = {}
    decisions: list[tuple[int, float, bool]] = []  # face, source time, partial

    def on_frame(frame, result) -> None:  # noqa: ANN001
        t = result.timestamp_ms / 1000.0
        for face in result.faces:
            first_seen.setdefault(face.track_id, t)
            if face.prediction is not None:
                decisions.append((face.track_id, t, bool(face.prediction.partial)))

    sink = ListSink()
    rec = open_recognizer(str(path), config, [sink], on_frame=on_frame)
    summary = rec.run()
    preds = [m for m in sink.messages if isinstance(m, Prediction)]
    out = {"frames": summary.frames, "predictions": len(preds), "partial": sum(1 for p in preds if p.partial), "faces": summary.faces}
    if decisions:
        face = decisions[0][0]
        mine = [(t, partial) for f, t, partial in decisions if f == face]
        t0 = first_seen[face]
        out["first_decision_s"] = mine[0][0] - t0
        out["first_partial"] = mine[0][1]
        full = [t for t, partial in mine if not partial]
        out["first_full_s"] = (full[0] - t0) if full else None
        span = mine[-1][0] - mine[0][0]
        out["decisions_per_s"] = (len(mine) - 1) / span if span > 0 else None
    out["ended"] = next((m.detail for m in sink.messages if isinstance(m, Status) and m.event == "ended"), "")
    return out


def offline_counts(folder: Path, cache: Path) -> dict[str, int]:
    """Offline windows (``clip_windows``, evaluate's rule) of every clip of ``folder``."""
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.data.motion import motion_discovery
    from realtime_fer.data.windows import clip_windows
    from realtime_fer.models.bundle import load_bundle

    window = load_bundle(None).window
    res = extract_dataset(motion_discovery([folder]), cache, workers=0, progress=False)
    return {s.ref.path.name: len(clip_windows(s, window).windows) for s in res.samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"), help="the shared data folder")
    ap.add_argument("--clip", default="video/talking/trump_clip1.mp4", help="clip (below --data) for the time to first decision")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of --clip to use")
    ap.add_argument("--num-faces", type=int, default=None, help="faces the live landmarker looks for (default: the runtime default, 2)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data} does not exist (the shared data folder)", file=sys.stderr)
        return 2
    import dataclasses

    from realtime_fer.explain.stream import StreamExplainOptions

    config = RuntimeConfig(device="cpu", explain=StreamExplainOptions(enabled=False))
    if args.num_faces is not None:
        config = dataclasses.replace(config, landmarker=dataclasses.replace(config.landmarker, num_faces=args.num_faces))
    report: dict = {"first_decision": {}, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print(f"time to first decision ({args.clip}, first {args.seconds:g} s, live path, explanations off)")
        print(f"{'fps':>4}  {'first decision':>14}  {'partial':>7}  {'first full':>10}  {'decisions/s':>11}  {'before (24 frames)':>18}")
        for fps in (10, 30):
            clip = tmp_path / f"first_{fps}fps.mp4"
            reencode(data / args.clip, clip, fps, max_seconds=args.seconds)
            r = live_run(clip, config)
            report["first_decision"][fps] = r
            before = 23 / fps
            print(f"{fps:>4}  {r.get('first_decision_s', float('nan')):>12.3f} s  {str(r.get('first_partial')):>7}  "
                  f"{(r.get('first_full_s') or float('nan')):>8.3f} s  {(r.get('decisions_per_s') or float('nan')):>11.2f}  {before:>16.3f} s")
        sets = {"wild (as shipped)": sorted((data / "video" / "wild").glob("*.mp4"))}
        mead10 = tmp_path / "mead10"
        mead10.mkdir()
        for src in sorted((data / "video" / "mead").glob("*.mp4")):
            reencode(src, mead10 / src.name, 10)
        sets["mead at 10 fps"] = sorted(mead10.glob("*.mp4"))
        cache = tmp_path / "cache"
        for name, clips in sets.items():
            rows = {}
            for clip in clips:
                rows[clip.name] = live_run(clip, config)
            folder = clips[0].parent
            offline = offline_counts(folder, cache)
            for clip_name, count in offline.items():
                rows[clip_name]["offline_windows"] = count
            report["clips"][name] = rows
            decided = sum(1 for r in rows.values() if r["predictions"] > 0)
            off = sum(1 for r in rows.values() if r.get("offline_windows", 0) > 0)
            print(f"\n{name}: {decided}/{len(rows)} clips with >= 1 live decision, {off}/{len(rows)} with >= 1 offline window")
            for clip_name, r in rows.items():
                print(f"  {clip_name:<22} {r['frames']:>4} frames  {r['predictions']:>4} decisions ({r['partial']} partial)  "
                      f"first after {r.get('first_decision_s', float('nan')):.2f} s  offline windows {r.get('offline_windows', 0)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
