"""``realtime-fer bench SRC``: per-stage latency, end-to-end throughput, and a bare landmarker
loop over the same frames for comparison (see :mod:`realtime_fer.bench`).

``realtime-fer bench VIDEO --streams N [--realtime]``: N copies of the video at once through the
multi-stream path of ``run`` (one process, one endpoint); frame rate and capture-to-publish
latency per stream. With ``--realtime`` each copy is an emulated live camera (the newest frame
wins): frames delivered and dropped, latency, time to the first decision, per stream."""

from __future__ import annotations

import argparse

from realtime_fer.commands._runtime import add_runtime_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="video file (or image, camera index, stream URL)")
    p.add_argument("--max-frames", type=int, metavar="N", help="use at most N frames of a file")
    p.add_argument("--repeat", type=int, default=1, metavar="K", help="alternate the bare and end-to-end passes K times (default 1)")
    p.add_argument("--duration", type=float, default=20.0, metavar="S", help="seconds to run on a live source (default 20)")
    p.add_argument("--streams", type=int, metavar="N", help="run N copies of the video at once (several cameras in one process); fps and latency per stream; with --realtime each copy is an emulated live camera (newest frame wins)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    add_runtime_arguments(p)


def run(args: argparse.Namespace) -> int:
    import json
    import math
    import sys

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.commands._runtime import runtime_config
    from realtime_fer.errors import FerError
    from realtime_fer.bench import run_bench

    if args.max_frames is not None and args.max_frames < 1:
        raise FerError("--max-frames must be at least 1")
    if args.repeat < 1:
        raise FerError("--repeat must be at least 1")
    if args.duration <= 0:
        raise FerError("--duration must be positive")
    if args.streams is not None:
        if args.streams < 1:
            raise FerError("--streams must be at least 1")
        if args.repeat != 1:
            raise FerError("--repeat does not apply to --streams (run the command again)")
        return _run_streams(args, runtime_config(args))
    config = runtime_config(args)
    report = run_bench(args.source, config, max_frames=args.max_frames, repeat=args.repeat, duration_s=args.duration)
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
    title = f"{report.source}: {report.frames} frames {report.width}x{report.height}" + (" (live)" if report.live else "")
    table = Table(title=title)
    for col in ("stage", "median ms", "p95 ms", "mean ms", "n"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, s in report.stages.items():
        label = {"inference": "inference (per scoring step)", "inference/frame": "inference (per frame, amortised)", "explain/face": "attributions (per scored face)", "explain/frame": "attributions (per frame, amortised)"}.get(name, name)
        table.add_row(label, fmt(s.median_ms), fmt(s.p95_ms), fmt(s.mean_ms), str(s.n))
    if report.latency.n:
        table.add_row("capture->publish latency", fmt(report.latency.median_ms), fmt(report.latency.p95_ms), fmt(report.latency.mean_ms), str(report.latency.n))
    console.print(table)
    ratio = report.models_ratio
    console.print(
        f"after the landmarks ({fmt(report.landmarks_ms_per_frame)} ms/frame): features + emotion models + publishing "
        f"{fmt(report.models_ms_per_frame)} ms/frame = {100 * ratio:.1f}%, target <= 10%: {'met' if ratio <= 0.10 else 'MISSED'}; "
        f"with the attributions {fmt(report.after_landmarks_ms_per_frame)} ms/frame = {100 * report.after_landmarks_ratio:.1f}%"
    )
    pipe = ", ".join(f"{v:.1f}" for v in report.pipeline_fps)
    bare = ", ".join(f"{v:.1f}" for v in report.bare_fps) or "-"
    line = f"end-to-end {pipe} fps; bare Face Landmarker {bare} fps"
    if not report.live and report.bare_fps:
        r = report.throughput_ratio
        pairs = ", ".join(f"{v:.2f}" for v in report.pair_ratios)
        line += (
            f"; ratio per pass pair {pairs}, median {r:.2f} (target >= 0.90: {'met' if r >= 0.9 else 'MISSED'}); "
            f"ratio of the medians {report.throughput_ratio_of_medians:.2f}"
        )
    console.print(line)
    if report.live and report.latency.n:
        two = 2 * report.frame_period_ms
        console.print(f"live capture->publish p95 {report.latency.p95_ms:.1f} ms; target < {two:.1f} ms (two frame periods at {report.target_fps:g} fps): {'met' if report.latency.p95_ms < two else 'MISSED'}")
    console.print(
        f"dropped {report.dropped}, predictions {report.predictions}; models on {report.provider}, landmarker delegate {report.delegate}; {report.threads}; "
        f"load average {report.loadavg_before[0]:.2f} before, {report.loadavg_after[0]:.2f} after"
    )
    for note in report.notes:
        console.print(f"note: {note}")
    if args.json:
        from realtime_fer.io_atomic import atomic_write

        with atomic_write(args.json) as fh:
            json.dump(report.to_dict(), fh, indent=2)
    return 0


def _run_streams(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    import json
    import math
    import sys

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.bench import run_bench_streams

    report = run_bench_streams(args.source, config, args.streams, max_frames=args.max_frames)
    console = Console(file=sys.stdout, width=max(Console().width, 180))
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"  # noqa: E731
    pace = "emulated live cameras" if report.realtime else "unpaced"
    table = Table(title=f"{report.source}: {report.n_streams} stream(s), {report.width}x{report.height}, {pace}, {report.cpus} CPUs")
    for col in ("stream", "frames", "fps", "dropped", "gap mean/max", "latency median", "latency p95", "p95 in periods", "frame p95", "first decision s", "landmarks median", "predictions", "CPUs: landmarker / others"):
        table.add_column(col, justify="left" if col in ("stream", "CPUs: landmarker / others") else "right")
    for s in report.streams:
        gap = s.to_dict()["gap"]
        table.add_row(
            s.id, str(s.frames), fmt(s.fps), str(s.dropped), "-" if gap["mean"] is None else f"{gap['mean']:.2f}/{gap['max']}",
            fmt(s.latency.median_ms), fmt(s.latency.p95_ms), fmt(s.latency_p95_periods), fmt(s.frame_latency.p95_ms),
            "-" if s.first_decision_s is None else f"{s.first_decision_s:.2f}", fmt(s.landmarks.median_ms), str(s.predictions), s.threads,
        )
    console.print(table)
    console.print(
        "latency: capture -> publish of frames with predictions (ms; p95 in periods: in the stream's delivered frame periods, target < 2); "
        "frame p95: capture -> done of every frame; gap: capture indices between processed frames (1: none dropped); "
        f"fairness (slowest / fastest stream fps) {report.fairness:.2f}"
    )
    console.print(
        f"all streams: {sum(s.frames for s in report.streams)} frames in {report.wall_s:.1f} s = {report.total_fps:.1f} fps; "
        f"{report.published} messages published on one socket; models on {report.provider}, landmarker delegate {report.delegate}; "
        f"load average {report.loadavg_before[0]:.2f} before, {report.loadavg_after[0]:.2f} after"
    )
    for note in report.notes:
        console.print(f"note: {note}")
    if args.json:
        from realtime_fer.io_atomic import atomic_write

        with atomic_write(args.json) as fh:
            json.dump(report.to_dict(), fh, indent=2)
    return 0
