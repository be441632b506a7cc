"""``realtime-fer evaluate --data DIR [--model BUNDLE] --output metrics.json``."""

from __future__ import annotations

import argparse

from realtime_fer.commands._dataset import add_dataset_arguments, output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_arguments(p, "metrics JSON to write")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="onnxruntime device")
    p.add_argument("--smoothing-tau", type=float, metavar="S", help="time constant of the published probabilities' moving average on clips, seconds (default: the live recognizer's)")
    p.add_argument("--no-smoothing", action="store_true", help="decide every window of a clip alone")
    p.add_argument("--adapt", action="store_true", help="person-adaptive normalisation on clips, as the live recognizer's adaptation.enabled")
    p.add_argument("--confusion-png", metavar="PATH", help="the clips' window confusion matrix as a PNG (default: next to --output, <name>.confusion.png, when DIR holds clips)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.errors import FerError
    from realtime_fer.features.adaptation import AdaptationOptions
    from realtime_fer.models.smoothing import SmoothingOptions
    from realtime_fer.training.evaluate import evaluate
    from realtime_fer.training.video_protocol import confusion_png, confusion_rows

    out = output_path(args.output)
    try:
        smoothing = SmoothingOptions(method="none") if args.no_smoothing else SmoothingOptions(**({"time_constant_s": args.smoothing_tau} if args.smoothing_tau is not None else {}))
    except ValueError as exc:
        raise FerError(f"--smoothing-tau: {exc}") from None
    metrics = evaluate(args.data, args.model, cache_dir=args.cache, device=args.device, workers=args.workers, progress=not args.no_progress, max_video_frames=args.max_video_frames, smoothing=smoothing, adaptation=AdaptationOptions(enabled=args.adapt))
    video = metrics.get("video")
    png = None
    if video is not None:
        png = Path(args.confusion_png) if args.confusion_png else out.with_name(out.stem + ".confusion.png")
        confusion_png(str(png), video["confusion"], title=f"{Path(args.data).name}: windows, rows true, columns published")
        video["confusion_png"] = str(png)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    table = Table(title=f"{args.data} ({metrics['overall']['n']} windows)")
    for col in ("emotion", "AUC", "accuracy", "bal. acc.", "F1", "n_pos", "n_neg"):
        table.add_column(col, justify="left" if col == "emotion" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for e, m in metrics["emotions"].items():
        table.add_row(e, fmt(m["auc"]), fmt(m["accuracy"]), fmt(m["balanced_accuracy"]), fmt(m["f1"]), str(m["n_pos"]), str(m["n_neg"]))
    console.print(table)
    if video is not None:
        clips = Table(title="clips: majority of the published tops")
        for col in ("clip", "label", "vote", "windows", "shares"):
            clips.add_column(col)
        for path, c in video["clips"].items():
            shares = ", ".join(f"{k} {v:.0%}" for k, v in list(c["share"].items())[:3]) or "no full window of a face"
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
        console.print(
            f"video: clips right {video['clips_right']}/{video['n_clips']} (accuracy {video['clip_accuracy']:.3f}), "
            f"mean window recall {fmt(video['mean_window_recall'])} ({recall}); confusion matrix -> {png}",
            markup=False,
        )
    ov = metrics["overall"]
    console.print(f"overall accuracy {fmt(ov['accuracy'])}, detection rate {ov['detection_rate']:.3f}, model on {metrics['model']['provider']} -> {out}")
    return 0
