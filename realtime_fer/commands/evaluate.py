"""``realtime-fer evaluate --data DIR [--model BUNDLE] --output metrics.json``."""

from __future__ import annotations

import argparse

from realtime_fer.commands._dataset import add_dataset_arguments, output_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_arguments(p, "metrics JSON to write")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="onnxruntime device")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from realtime_fer.training.evaluate import evaluate

    out = output_path(args.output)
    metrics = evaluate(args.data, args.model, cache_dir=args.cache, device=args.device, workers=args.workers, progress=not args.no_progress, max_video_frames=args.max_video_frames)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    table = Table(title=f"{args.data} ({metrics['overall']['n']} windows)")
    for col in ("emotion", "AUC", "accuracy", "bal. acc.", "F1", "n_pos", "n_neg"):
        table.add_column(col, justify="left" if col == "emotion" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for e, m in metrics["emotions"].items():
        table.add_row(e, fmt(m["auc"]), fmt(m["accuracy"]), fmt(m["balanced_accuracy"]), fmt(m["f1"]), str(m["n_pos"]), str(m["n_neg"]))
    console.print(table)
    ov = metrics["overall"]
    console.print(f"overall accuracy {fmt(ov['accuracy'])}, detection rate {ov['detection_rate']:.3f}, model on {metrics['model']['provider']} -> {out}")
    return 0
