"""``realtime-fer evaluate --data DIR [--model BUNDLE] --output metrics.json``."""

from __future__ import annotations

import argparse

from realtime_fer.commands._dataset import add_dataset_arguments, output_path
from realtime_fer.commands.extract import add_scheduler_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_arguments(p, "metrics JSON to write")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="onnxruntime device")
    p.add_argument("--smoothing-tau", type=float, metavar="S", help="time constant of the published probabilities' moving average on clips, seconds (default: the live recognizer's)")
    p.add_argument("--no-smoothing", action="store_true", help="decide every window of a clip alone")
    p.add_argument("--adapt", action="store_true", help="person-adaptive normalisation on clips, as the live recognizer's adaptation.enabled")
    p.add_argument("--partial-windows", choices=["short", "all", "none"], default="short", help="which partial windows of clips are scored (a face seen for less than a window, at least --min-seconds): 'short' only in runs too short for a full window (default), 'all' every one a live stream publishes, 'none' full windows only")
    p.add_argument("--min-seconds", type=float, default=0.4, metavar="S", help="a face seen this long gets a partial window (the live window.min_seconds; default 0.4)")
    p.add_argument("--leave-one-actor-out", metavar="TRAIN_CONFIG", help="for recipes that train on video: per actor of DIR's clips, train TRAIN_CONFIG's recipe on its sources plus the other actors' clips and score the held-out actor's clips (--model is not used)")
    p.add_argument("--groups", metavar="YAML", help="with --leave-one-actor-out: a map 'clip file name: actor' for clips whose names carry no actor")
    add_scheduler_arguments(p)
    p.add_argument("--confusion-png", metavar="PATH", help="the clips' window confusion matrix as a PNG (default: next to --output, <name>.confusion.png, when DIR holds clips)")


def run(args: argparse.Namespace) -> int:
    from realtime_fer.data.executors import scheduler_executor
    from realtime_fer.errors import FerError
    from realtime_fer.features.adaptation import AdaptationOptions
    from realtime_fer.models.smoothing import SmoothingOptions

    out = output_path(args.output)
    try:
        smoothing = SmoothingOptions(method="none") if args.no_smoothing else SmoothingOptions(**({"time_constant_s": args.smoothing_tau} if args.smoothing_tau is not None else {}))
    except ValueError as exc:
        raise FerError(f"--smoothing-tau: {exc}") from None
    adaptation = AdaptationOptions(enabled=args.adapt)
    if not (args.min_seconds >= 0 and args.min_seconds < float("inf")):
        raise FerError(f"--min-seconds must be >= 0 seconds, got {args.min_seconds}")
    if args.groups and not args.leave_one_actor_out:
        raise FerError("--groups is used with --leave-one-actor-out only")
    with scheduler_executor(args.scheduler, connect_timeout_s=args.scheduler_timeout, send_files=args.send_files):
        metrics = _metrics(args, smoothing, adaptation)
    _report(args, out, metrics)
    return 0


def _metrics(args: argparse.Namespace, smoothing, adaptation) -> dict:  # noqa: ANN001 - imported lazily
    """The metrics of ``args``: the plain evaluation or leave one actor out; extraction runs on
    the executor of the enclosing block (a Dask cluster with ``--scheduler``)."""
    from realtime_fer.training.evaluate import evaluate

    if args.leave_one_actor_out:
        from realtime_fer.training.config import load_train_config
        from realtime_fer.training.leave_one_out import leave_one_group_out

        cfg = load_train_config(args.leave_one_actor_out)
        cfg.data.cache_dir = args.cache
        metrics = leave_one_group_out(args.data, cfg, groups_file=args.groups, smoothing=smoothing, adaptation=adaptation, device=args.device, workers=args.workers, progress=not args.no_progress)
    else:
        metrics = evaluate(args.data, args.model, cache_dir=args.cache, device=args.device, workers=args.workers, progress=not args.no_progress, max_video_frames=args.max_video_frames, smoothing=smoothing, adaptation=adaptation, partial=args.partial_windows, min_seconds=args.min_seconds)
    return metrics


def _report(args: argparse.Namespace, out, metrics: dict) -> None:  # noqa: ANN001 - pathlib is imported lazily
    """Write ``metrics`` (and the confusion PNG of clips) and print their tables."""
    import json
    import sys
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.training.video_protocol import confusion_png

    video = metrics.get("video")
    png = None
    if video is not None:
        png = Path(args.confusion_png) if args.confusion_png else out.with_name(out.stem + ".confusion.png")
        kind = ", leave one actor out" if args.leave_one_actor_out else ""
        confusion_png(str(png), video["confusion"], title=f"{Path(args.data).name}{kind}: windows, rows true, columns published")
        video["confusion_png"] = str(png)
    from realtime_fer.io_atomic import write_text_atomic

    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")  # never a half-written file
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    if "emotions" in metrics:
        table = Table(title=f"{args.data} ({metrics['overall']['n']} windows)")
        for col in ("emotion", "AUC", "accuracy", "bal. acc.", "F1", "n_pos", "n_neg"):
            table.add_column(col, justify="left" if col == "emotion" else "right")
        for e, m in metrics["emotions"].items():
            table.add_row(e, fmt(m["auc"]), fmt(m["accuracy"]), fmt(m["balanced_accuracy"]), fmt(m["f1"]), str(m["n_pos"]), str(m["n_neg"]))
        console.print(table)
    if video is not None:
        print_video(console, video, png)
    if "overall" not in metrics:
        console.print(f"leave one actor out over {len(metrics['actors'])} actors -> {out}", markup=False)
        return
    ov = metrics["overall"]
    console.print(f"overall accuracy {fmt(ov['accuracy'])}, detection rate {ov['detection_rate']:.3f}, model on {metrics['model']['provider']} -> {out}")


def print_video(console, video: dict, png) -> None:  # noqa: ANN001 - rich is imported lazily
    """The video protocol's tables: clips, window confusion, the summary line."""
    from pathlib import Path

    from rich.table import Table

    from realtime_fer.training.video_protocol import confusion_rows

    clips = Table(title="clips: majority of the published tops")
    for col in ("clip", "label", "vote", "windows", "shares"):
        clips.add_column(col)
    for path, c in video["clips"].items():
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(c["share"].items())[:3]) or "no window of a face"
        clips.add_row(Path(path).name, c["label"], ("[green]" if c["correct"] else "[red]") + str(c["vote"]), str(c["windows"]), shares)
    console.print(clips)
    cm = Table(title="window confusion (rows true, columns published; share of the row)")
    cm.add_column("true \\ published")
    for p in video["confusion"]["predicted"]:
        cm.add_column(p[:8], justify="right")
    for row in confusion_rows(video["confusion"]):
        cm.add_row(*row)
    console.print(cm)
    recall = ", ".join(f"{k} {v:.2f}" for k, v in video["window_recall"].items())
    mean = video["mean_window_recall"]
    console.print(
        f"video: clips right {video['clips_right']}/{video['n_clips']} (accuracy {video['clip_accuracy']:.3f}), "
        f"mean window recall {'-' if mean is None else f'{mean:.3f}'} ({recall}); confusion matrix -> {png}",
        markup=False,
    )
