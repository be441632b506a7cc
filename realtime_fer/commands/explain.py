"""``realtime-fer explain --data DIR --output relevance.json``: dataset-level relevance of regions, blendshapes and landmarks."""

from __future__ import annotations

import argparse

from realtime_fer.commands._dataset import add_dataset_arguments, output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_arguments(p, "relevance JSON to write")
    p.add_argument("--baseline", default="others", help="IG baseline: neutral, others (typical faces of the other emotions; default) or zero")
    p.add_argument("--steps", type=int, default=16, help="quadrature points on the IG path (default 16)")
    p.add_argument("--method", default="gausslegendre", choices=["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
    p.add_argument("--max-samples", type=int, default=500, help="most windows explained per emotion, evenly spaced (default 500; 0 = all)")
    p.add_argument("--top", type=int, default=10, help="regions and blendshapes listed per emotion in 'top' (and landmarks in 'top_landmarks'; default 10)")
    p.add_argument("--heatmaps", help="folder for one PNG heatmap per emotion")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from realtime_fer.errors import DataError
    from realtime_fer.explain.baselines import check_kind
    from realtime_fer.explain.dataset import explain_dataset

    out = output_path(args.output)
    check_kind(args.baseline)
    if args.steps < 1 or args.max_samples < 0 or args.top < 1:
        raise DataError("--steps and --top must be >= 1 and --max-samples >= 0")
    err = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=args.no_progress or not err.is_terminal)
    with bar:
        task = bar.add_task("explaining emotions", total=None)

        def done(emotion: str) -> None:
            bar.update(task, advance=1, description=f"explained {emotion}")

        report = explain_dataset(
            args.data, args.model, baseline=args.baseline, n_steps=args.steps, method=args.method,
            max_samples=args.max_samples or None, top_k=args.top, heatmaps=args.heatmaps, cache_dir=args.cache,
            workers=args.workers, max_video_frames=args.max_video_frames, progress=not args.no_progress, on_emotion=done,
        )
    from realtime_fer.io_atomic import write_text_atomic

    write_text_atomic(out, json.dumps(report, indent=1) + "\n")  # never a half-written file
    console = Console(file=sys.stdout, width=max(Console().width, 120))
    table = Table(title=f"landmark relevance: {args.data} (IG, {args.baseline} baseline, {args.steps} steps)")
    for col in ("emotion", "windows", "landmarks", "top regions and blendshapes (share of relevance)", "max gap"):
        table.add_column(col, justify="left" if col in ("emotion", "top regions and blendshapes (share of relevance)") else "right")
    for e, r in report["emotions"].items():
        regions = ", ".join(f"{t.get('region', t.get('blendshape'))} {100 * t['relevance']:.0f}%" for t in r["top"][:4])
        table.add_row(e, str(r["n_samples"]), str(len(r["landmarks"])), regions, f"{r['completeness']['max_relative_delta']:.1e}")
    console.print(table)
    for e, why in report["skipped"].items():
        console.print(f"skipped {e}: {why}")
    console.print(f"-> {out}" + (f", heatmaps in {args.heatmaps}" if args.heatmaps else "") + f" ({report['seconds']:.1f} s)")
    return 0
